package microsam_fiji;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Appose's worker protocol (github.com/apposed/appose) on a worker's stdin and stdout: one JSON object a line,
 * UTF-8. Requests EXECUTE (a script and its inputs) and CANCEL go out; responses LAUNCH, UPDATE, COMPLETION,
 * CANCELATION, FAILURE, CRASH come back, each with its task's id, and a reader thread hands each to the queue
 * of its {@link Task}. Only the message format lives here: the process, its faults and what a response means
 * for ImageJ are {@link Worker}'s, so an appose-java service could replace both.
 */
final class Channel {
	private final Writer out;
	private final Map<String, LinkedBlockingQueue<Response>> tasks =
		new ConcurrentHashMap<String, LinkedBlockingQueue<Response>>();
	private volatile boolean open = true;

	/** Starts reading {@code in} (the worker's stdout) on a daemon thread; requests go to {@code out}. */
	Channel(InputStream in, OutputStream out) {
		this.out = new OutputStreamWriter(out, StandardCharsets.UTF_8);
		final BufferedReader lines = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
		Thread reader = new Thread(() -> read(lines), "micro-sam worker responses");
		reader.setDaemon(true);
		reader.start();
	}

	/** One response; the getters read the fields of its type (absent ones as "" or -1). */
	static final class Response {
		static final Response CRASH = new Response(crash());

		final String type;
		private final Map<String, Object> fields;

		Response(Map<String, Object> fields) {
			this.fields = fields;
			this.type = String.valueOf(fields.get("responseType"));
		}

		private static Map<String, Object> crash() {
			Map<String, Object> m = new LinkedHashMap<String, Object>();
			m.put("responseType", "CRASH");
			return m;
		}

		/** UPDATE: the progress message and counts (-1 when the worker sent none). */
		String message() {
			return str(fields.get("message"));
		}

		long current() {
			return num(fields.get("current"));
		}

		long maximum() {
			return num(fields.get("maximum"));
		}

		/** COMPLETION: the task's outputs (empty when it set none). */
		@SuppressWarnings("unchecked")
		Map<String, Object> outputs() {
			Object o = fields.get("outputs");
			return o instanceof Map ? (Map<String, Object>) o : new LinkedHashMap<String, Object>();
		}

		/** FAILURE: the error text (a traceback for an unexpected Python error). */
		String error() {
			return str(fields.get("error"));
		}

		private static String str(Object o) {
			return o == null ? "" : String.valueOf(o);
		}

		private static long num(Object o) {
			return o instanceof Number ? ((Number) o).longValue() : -1;
		}
	}

	/** One EXECUTE request and the responses to it, until {@link #close}. */
	final class Task {
		final String id = UUID.randomUUID().toString();
		private final LinkedBlockingQueue<Response> queue = new LinkedBlockingQueue<Response>();

		/** The next response, or null when none came within {@code millis}. */
		Response poll(long millis) throws InterruptedException {
			return queue.poll(millis, TimeUnit.MILLISECONDS);
		}

		/** No response is waiting: with the channel closed, none will come any more. */
		boolean drained() {
			return queue.isEmpty();
		}

		/** Asks the worker to stop the task; it answers CANCELATION (or finishes first). */
		void cancel() throws IOException {
			Map<String, Object> cancel = new LinkedHashMap<String, Object>();
			cancel.put("task", id);
			cancel.put("requestType", "CANCEL");
			send(cancel);
		}

		/** Done with the task: later responses to it are dropped. */
		void close() {
			tasks.remove(id);
		}
	}

	/** Sends EXECUTE: the worker runs {@code script} with {@code inputs} as variables and {@code task} bound. */
	Task execute(String script, Map<String, Object> inputs) throws IOException {
		Task task = new Task();
		tasks.put(task.id, task.queue); // before the request: the worker may answer before send() returns
		Map<String, Object> execute = new LinkedHashMap<String, Object>();
		execute.put("task", task.id);
		execute.put("requestType", "EXECUTE");
		execute.put("script", script);
		execute.put("inputs", inputs);
		try {
			send(execute);
		} catch (IOException e) {
			task.close();
			throw e;
		}
		return task;
	}

	/** False once the worker's stdout ended or a request could not be written: the worker is gone. */
	boolean isOpen() {
		return open;
	}

	/** Closes the worker's stdin: Appose's worker exits when its input ends. */
	void close() throws IOException {
		out.close();
	}

	/** One line per message; synchronized, as a CANCEL may go out from a dialog while a macro's EXECUTE does. */
	private synchronized void send(Map<String, Object> message) throws IOException {
		try {
			out.write(Json.write(message));
			out.write("\n");
			out.flush();
		} catch (IOException e) {
			open = false;
			throw e;
		}
	}

	private void read(BufferedReader lines) {
		try {
			String line;
			while ((line = lines.readLine()) != null) {
				Map<String, Object> fields;
				try {
					fields = Json.parseObject(line.trim());
				} catch (IllegalArgumentException notJson) {
					continue; // the Python side routes stray output to stderr; ignore anything that slips past
				}
				LinkedBlockingQueue<Response> queue = tasks.get(String.valueOf(fields.get("task")));
				if (queue != null)
					queue.add(new Response(fields));
			}
		} catch (IOException ignored) {
			// the pipe broke: handled below like an end of stream
		}
		open = false;
		// every task still waiting learns that no answer will come
		for (LinkedBlockingQueue<Response> queue : tasks.values())
			queue.add(Response.CRASH);
	}
}
