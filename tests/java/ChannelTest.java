package microsam_fiji; // Channel is package-private: the test lives in the plugin's package

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Unit test of {@link Channel}, the Appose message layer, with pipes standing in for the worker's stdin and
 * stdout: EXECUTE and CANCEL lines as Appose's worker reads them, responses routed to their task by id, stray
 * output skipped, and the end of the worker's stdout turned into CRASH for the waiting task. Run by
 * tests/test_plugin_java.py; prints "FAIL ..." lines and "failures=N".
 */
public class ChannelTest {
	private static int checks;
	private static final List<String> failures = new ArrayList<String>();

	public static void main(String[] args) throws Exception {
		try {
			run();
		} catch (Throwable e) {
			failures.add("unexpected " + e);
			e.printStackTrace();
		}
		for (String f : failures)
			System.out.println("FAIL " + f);
		System.out.println("checks=" + checks);
		System.out.println("failures=" + failures.size());
		System.exit(Math.min(failures.size(), 100));
	}

	static void run() throws Exception {
		PipedOutputStream workerStdout = new PipedOutputStream(); // what the worker writes
		PipedInputStream pluginReads = new PipedInputStream(workerStdout, 1 << 16);
		PipedInputStream workerStdin = new PipedInputStream(1 << 16); // what the worker reads
		PipedOutputStream pluginWrites = new PipedOutputStream(workerStdin);
		Channel channel = new Channel(pluginReads, pluginWrites);
		BufferedReader requests = new BufferedReader(new InputStreamReader(workerStdin, StandardCharsets.UTF_8));
		Writer responses = new OutputStreamWriter(workerStdout, StandardCharsets.UTF_8);

		Map<String, Object> inputs = new LinkedHashMap<String, Object>();
		inputs.put("request", "José 𝄞");
		Channel.Task a = channel.execute("print(1)", inputs);
		Channel.Task b = channel.execute("print(2)", inputs);
		Map<String, Object> execute = Json.parseObject(requests.readLine());
		equal("EXECUTE type", execute.get("requestType"), "EXECUTE");
		equal("EXECUTE task", execute.get("task"), a.id);
		equal("EXECUTE script", execute.get("script"), "print(1)");
		equal("EXECUTE inputs (UTF-8 on the pipe)", execute.get("inputs"), inputs);
		equal("second EXECUTE", Json.parseObject(requests.readLine()).get("task"), b.id);
		a.cancel();
		Map<String, Object> cancel = Json.parseObject(requests.readLine());
		equal("CANCEL type", cancel.get("requestType"), "CANCEL");
		equal("CANCEL task", cancel.get("task"), a.id);

		responses.write("stray text a library printed\n");
		responses.write("{\"task\":\"" + b.id + "\",\"responseType\":\"UPDATE\",\"message\":\"encoding\","
			+ "\"current\":2,\"maximum\":5}\n");
		responses.write("{\"task\":\"" + a.id + "\",\"responseType\":\"COMPLETION\",\"outputs\":{\"n\":3}}\n");
		responses.write("{\"task\":\"someone-else\",\"responseType\":\"COMPLETION\"}\n");
		responses.write("{\"task\":\"" + b.id + "\",\"responseType\":\"FAILURE\",\"error\":\"Traceback\\n"
			+ "ValueError: x\"}\n");
		responses.flush();
		Channel.Response done = a.poll(5000);
		equal("a: COMPLETION", done == null ? null : done.type, "COMPLETION");
		equal("a: outputs", done == null ? null : done.outputs().get("n"), 3L);
		Channel.Response update = b.poll(5000);
		equal("b: UPDATE first (stray line skipped)", update == null ? null : update.type, "UPDATE");
		equal("b: message", update == null ? null : update.message(), "encoding");
		equal("b: current", update == null ? null : update.current(), 2L);
		equal("b: maximum", update == null ? null : update.maximum(), 5L);
		Channel.Response failure = b.poll(5000);
		equal("b: FAILURE", failure == null ? null : failure.type, "FAILURE");
		equal("b: error", failure == null ? null : failure.error(), "Traceback\nValueError: x");
		equal("a: nothing more", a.poll(200), null);
		a.close();
		b.close();

		Channel.Task c = channel.execute("print(3)", inputs);
		requests.readLine();
		equal("open before the end", channel.isOpen(), true);
		responses.close(); // the worker died: its stdout ends
		Channel.Response crash = c.poll(5000);
		equal("c: CRASH at the end of stdout", crash == null ? null : crash.type, "CRASH");
		equal("c: empty outputs", crash == null ? null : crash.outputs().isEmpty(), true);
		equal("c: drained", c.drained(), true);
		equal("closed after the end", channel.isOpen(), false);
		c.close();
		channel.close();
	}

	static void equal(String what, Object actual, Object expected) {
		checks++;
		if (actual == null ? expected != null : !actual.equals(expected))
			failures.add(what + ": got " + actual + ", expected " + expected);
	}
}
