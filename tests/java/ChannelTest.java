package microsam_fiji; // Channel is package-private: the test lives in the plugin's package

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PipedInputStream;
import java.io.PipedOutputStream;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

import org.junit.After;
import org.junit.Before;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.Timeout;

/**
 * JUnit 4 tests of {@link Channel}, the Appose message layer, with pipes standing in for the worker's stdin and
 * stdout: EXECUTE and CANCEL lines as Appose's worker reads them, responses routed to their task by id, stray
 * output skipped, and the end of the worker's stdout turned into CRASH for the waiting task. Run with JUnitCore by
 * tests/test_plugin_java.py.
 */
public class ChannelTest {
	/** A request line that never comes would block readLine for good. */
	@Rule
	public final Timeout timeout = Timeout.seconds(30);

	private Channel channel;
	private BufferedReader requests; // the worker's stdin
	private Writer responses;
	private final Map<String, Object> inputs = new LinkedHashMap<String, Object>();

	@Before
	public void pipes() throws IOException {
		PipedOutputStream workerStdout = new PipedOutputStream(); // what the worker writes
		PipedInputStream pluginReads = new PipedInputStream(workerStdout, 1 << 16);
		PipedInputStream workerStdin = new PipedInputStream(1 << 16);
		PipedOutputStream pluginWrites = new PipedOutputStream(workerStdin);
		channel = new Channel(pluginReads, pluginWrites);
		requests = new BufferedReader(new InputStreamReader(workerStdin, StandardCharsets.UTF_8));
		responses = new OutputStreamWriter(workerStdout, StandardCharsets.UTF_8);
		inputs.put("request", "José 𝄞");
	}

	@After
	public void close() throws IOException {
		responses.close();
		channel.close();
	}

	@Test
	public void executeWritesOneUtf8LinePerRequest() throws IOException {
		Channel.Task a = channel.execute("print(1)", inputs);
		Channel.Task b = channel.execute("print(2)", inputs);
		Map<String, Object> execute = Json.parseObject(requests.readLine());
		assertEquals("EXECUTE type", "EXECUTE", execute.get("requestType"));
		assertEquals("EXECUTE task", a.id, execute.get("task"));
		assertEquals("EXECUTE script", "print(1)", execute.get("script"));
		assertEquals("EXECUTE inputs (UTF-8 on the pipe)", inputs, execute.get("inputs"));
		assertEquals("second EXECUTE", b.id, Json.parseObject(requests.readLine()).get("task"));
	}

	@Test
	public void cancelWritesACancelLineForItsTask() throws IOException {
		Channel.Task a = channel.execute("print(1)", inputs);
		requests.readLine();
		a.cancel();
		Map<String, Object> cancel = Json.parseObject(requests.readLine());
		assertEquals("CANCEL type", "CANCEL", cancel.get("requestType"));
		assertEquals("CANCEL task", a.id, cancel.get("task"));
	}

	@Test
	public void responsesGoToTheirTaskByIdAndStrayOutputIsSkipped() throws IOException, InterruptedException {
		Channel.Task a = channel.execute("print(1)", inputs);
		Channel.Task b = channel.execute("print(2)", inputs);
		responses.write("stray text a library printed\n");
		responses.write("{\"task\":\"" + b.id + "\",\"responseType\":\"UPDATE\",\"message\":\"encoding\","
			+ "\"current\":2,\"maximum\":5}\n");
		responses.write("{\"task\":\"" + a.id + "\",\"responseType\":\"COMPLETION\",\"outputs\":{\"n\":3}}\n");
		responses.write("{\"task\":\"someone-else\",\"responseType\":\"COMPLETION\"}\n");
		responses.write("{\"task\":\"" + b.id + "\",\"responseType\":\"FAILURE\",\"error\":\"Traceback\\n"
			+ "ValueError: x\"}\n");
		responses.flush();
		Channel.Response done = a.poll(5000);
		assertNotNull("a: a response within 5 s", done);
		assertEquals("a: COMPLETION", "COMPLETION", done.type);
		assertEquals("a: outputs", 3L, done.outputs().get("n"));
		Channel.Response update = b.poll(5000);
		assertNotNull("b: a response within 5 s", update);
		assertEquals("b: UPDATE first (stray line skipped)", "UPDATE", update.type);
		assertEquals("b: message", "encoding", update.message());
		assertEquals("b: current", 2L, update.current());
		assertEquals("b: maximum", 5L, update.maximum());
		Channel.Response failure = b.poll(5000);
		assertNotNull("b: a second response within 5 s", failure);
		assertEquals("b: FAILURE", "FAILURE", failure.type);
		assertEquals("b: error", "Traceback\nValueError: x", failure.error());
		assertNull("a: nothing more (someone-else's COMPLETION dropped)", a.poll(200));
		a.close();
		b.close();
	}

	@Test
	public void theEndOfTheWorkersStdoutIsACrashForTheWaitingTask() throws IOException, InterruptedException {
		Channel.Task c = channel.execute("print(3)", inputs);
		requests.readLine();
		assertTrue("open before the end", channel.isOpen());
		responses.close(); // the worker died: its stdout ends
		Channel.Response crash = c.poll(5000);
		assertNotNull("c: a response within 5 s", crash);
		assertEquals("c: CRASH at the end of stdout", "CRASH", crash.type);
		assertTrue("c: empty outputs", crash.outputs().isEmpty());
		assertTrue("c: drained", c.drained());
		assertFalse("closed after the end", channel.isOpen());
		c.close();
	}
}
