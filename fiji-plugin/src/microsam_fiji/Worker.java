package microsam_fiji;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.Charset;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * The warm Python worker: one process per ImageJ session, started on first use with the interpreter from
 * {@link Config}, kept while ImageJ runs (the model stays loaded, per-image embeddings stay cached), ended when
 * ImageJ exits (its stdin closes).
 *
 * <p>Messages are JSON lines in Appose's worker protocol (github.com/apposed/appose: requests EXECUTE and CANCEL
 * on stdin; responses LAUNCH, UPDATE, COMPLETION, CANCELATION, FAILURE, CRASH on stdout, each with the task's id),
 * served by Appose's own Python worker ({@code appose.python_worker}), so the Python side is Appose's and an
 * appose-java service could replace this class. No network socket. The worker's stderr goes to a log file.
 *
 * <p>Faults: a worker that is missing, dies mid-task or was killed between calls gives one {@link PluginError};
 * the next call starts a fresh worker.
 */
final class Worker {
	interface Listener {
		void update(String message, long current, long maximum);

		/** Polled while a task runs: true asks the worker to cancel it. */
		boolean cancelRequested();
	}

	static final class Cancelled extends RuntimeException {
		private static final long serialVersionUID = 1L;

		Cancelled() {
			super("cancelled");
		}
	}

	/** The worker was gone before the task started (killed between calls): safe to retry on a new one. */
	static final class Gone extends PluginError {
		private static final long serialVersionUID = 1L;

		Gone(String message) {
			super(message);
		}
	}

	private static Worker instance;

	private final Config config;
	private final Process process;
	private final Writer stdin;
	private final File log;
	private final Map<String, LinkedBlockingQueue<Map<String, Object>>> tasks =
		new ConcurrentHashMap<String, LinkedBlockingQueue<Map<String, Object>>>();
	private volatile boolean alive = true;
	final Map<String, Object> hello;

	/** The running worker, or a new one when there is none or the last one died. */
	static synchronized Worker get() {
		if (instance == null || !instance.isAlive()) {
			if (instance != null)
				instance.stop();
			instance = null;
			instance = new Worker(Config.load());
		}
		return instance;
	}

	/** The running worker or null: for tests and the preview, which must not start one by themselves. */
	static synchronized Worker current() {
		return instance != null && instance.isAlive() ? instance : null;
	}

	private Worker(Config config) {
		this.config = config;
		this.log = logFile();
		List<String> command = new ArrayList<String>();
		command.add(config.python);
		command.add("-m");
		command.add("microsam_fiji.plugin.worker");
		if (!config.model.isEmpty()) {
			command.add("--model");
			command.add(config.model);
		}
		if (!config.device.isEmpty()) {
			command.add("--device");
			command.add(config.device);
		}
		ProcessBuilder pb = new ProcessBuilder(command);
		pb.environment().put("PYTHONUNBUFFERED", "1");
		pb.environment().put("PYTHONIOENCODING", "utf-8");
		pb.redirectError(ProcessBuilder.Redirect.appendTo(log));
		try {
			process = pb.start();
		} catch (IOException e) {
			throw new PluginError("cannot start the Python worker '" + config.python + "' (" + e.getMessage()
				+ "): " + Config.SETUP);
		}
		Charset utf8 = Charset.forName("UTF-8");
		stdin = new OutputStreamWriter(process.getOutputStream(), utf8);
		final BufferedReader stdout = new BufferedReader(new InputStreamReader(process.getInputStream(), utf8));
		Thread reader = new Thread(new Runnable() {
			public void run() {
				readResponses(stdout);
			}
		}, "micro-sam worker responses");
		reader.setDaemon(true);
		reader.start();
		Runtime.getRuntime().addShutdownHook(new Thread(new Runnable() {
			public void run() {
				stop();
			}
		}, "micro-sam worker shutdown"));
		Map<String, Object> request = new LinkedHashMap<String, Object>();
		request.put("action", "hello");
		request.put("plugin_version", Version.VERSION);
		request.put("plugin_folder", Config.pluginFolder().getAbsolutePath());
		try {
			hello = call(request, null);
		} catch (RuntimeException e) {
			stop();
			throw e;
		}
	}

	private static File logFile() {
		File dir = new File(System.getProperty("java.io.tmpdir"), "micro-sam-fiji");
		dir.mkdirs();
		return new File(dir, "worker-" + System.getProperty("user.name", "user") + ".log");
	}

	File log() {
		return log;
	}

	boolean isAlive() {
		if (!alive)
			return false;
		try {
			process.exitValue();
			return false;
		} catch (IllegalThreadStateException running) {
			return true;
		}
	}

	/** The worker's process id where Java tells it (Java 9+), else -1: tests kill it between calls. */
	long pid() {
		try {
			Object v = Process.class.getMethod("pid").invoke(process);
			return ((Number) v).longValue();
		} catch (Exception e) {
			return -1;
		}
	}

	void stop() {
		alive = false;
		try {
			stdin.close(); // the worker exits when its stdin closes
		} catch (IOException ignored) {
			// already gone
		}
		try {
			if (!waitFor(3000))
				process.destroy();
		} catch (InterruptedException e) {
			process.destroy();
			Thread.currentThread().interrupt();
		}
	}

	private boolean waitFor(long millis) throws InterruptedException {
		long end = System.currentTimeMillis() + millis;
		while (System.currentTimeMillis() < end) {
			try {
				process.exitValue();
				return true;
			} catch (IllegalThreadStateException running) {
				Thread.sleep(20);
			}
		}
		return false;
	}

	private void readResponses(BufferedReader stdout) {
		try {
			String line;
			while ((line = stdout.readLine()) != null) {
				Map<String, Object> response;
				try {
					response = Json.parseObject(line.trim());
				} catch (IllegalArgumentException notJson) {
					continue; // the Python side routes stray output to stderr; ignore anything that slips past
				}
				LinkedBlockingQueue<Map<String, Object>> queue = tasks.get(String.valueOf(response.get("task")));
				if (queue != null)
					queue.add(response);
			}
		} catch (IOException ignored) {
			// the pipe broke: handled below like an end of stream
		}
		alive = false;
		Map<String, Object> crash = new LinkedHashMap<String, Object>();
		crash.put("responseType", "CRASH");
		for (LinkedBlockingQueue<Map<String, Object>> queue : tasks.values())
			queue.add(crash);
	}

	private String crashMessage() {
		String code = "";
		try {
			waitFor(2000);
			code = " (exit code " + process.exitValue() + ")";
		} catch (Exception ignored) {
			// still running or interrupted: no code to show
		}
		return "the Python worker stopped" + code + "; the next call starts a new one (log: " + log + ")";
	}

	/**
	 * Runs one request and returns its outputs. Throws {@link PluginError} with the worker's one-line message on
	 * failure, {@link Cancelled} when the listener asked to cancel and the worker confirmed.
	 */
	@SuppressWarnings("unchecked")
	Map<String, Object> call(Map<String, Object> request, Listener listener) {
		String id = UUID.randomUUID().toString();
		LinkedBlockingQueue<Map<String, Object>> queue = new LinkedBlockingQueue<Map<String, Object>>();
		tasks.put(id, queue);
		try {
			Map<String, Object> inputs = new LinkedHashMap<String, Object>();
			inputs.put("request", request);
			Map<String, Object> execute = new LinkedHashMap<String, Object>();
			execute.put("task", id);
			execute.put("requestType", "EXECUTE");
			execute.put("script", "from microsam_fiji.plugin.tasks import handle\nhandle(task, request)");
			execute.put("inputs", inputs);
			send(execute);
			long cancelSent = 0; // when CANCEL went out; a worker that does not stop within a minute is ended
			boolean launched = false;
			while (true) {
				Map<String, Object> response = queue.poll(100, TimeUnit.MILLISECONDS);
				if (response == null) {
					if (cancelSent == 0 && listener != null && listener.cancelRequested()) {
						Map<String, Object> cancel = new LinkedHashMap<String, Object>();
						cancel.put("task", id);
						cancel.put("requestType", "CANCEL");
						send(cancel);
						cancelSent = System.currentTimeMillis();
					} else if (cancelSent > 0 && System.currentTimeMillis() - cancelSent > 60000) {
						stop(); // stuck between progress points: the next call starts a fresh worker
						throw new Cancelled();
					}
					if (!isAlive() && queue.isEmpty() && !alive)
						throw launched ? new PluginError(crashMessage()) : new Gone(crashMessage());
					continue;
				}
				String type = String.valueOf(response.get("responseType"));
				if ("LAUNCH".equals(type)) {
					launched = true;
				} else if ("UPDATE".equals(type)) {
					if (listener != null)
						listener.update(str(response.get("message")), num(response.get("current")),
							num(response.get("maximum")));
				} else if ("COMPLETION".equals(type)) {
					Object outputs = response.get("outputs");
					return outputs instanceof Map ? (Map<String, Object>) outputs : new LinkedHashMap<String, Object>();
				} else if ("CANCELATION".equals(type)) {
					throw new Cancelled();
				} else if ("FAILURE".equals(type)) {
					throw new PluginError(lastLine(str(response.get("error"))));
				} else if ("CRASH".equals(type)) {
					throw launched ? new PluginError(crashMessage()) : new Gone(crashMessage());
				}
			}
		} catch (InterruptedException e) {
			Thread.currentThread().interrupt();
			throw new Cancelled();
		} finally {
			tasks.remove(id);
		}
	}

	private synchronized void send(Map<String, Object> message) {
		try {
			stdin.write(Json.write(message));
			stdin.write("\n");
			stdin.flush();
		} catch (IOException e) {
			alive = false;
			throw new Gone(crashMessage());
		}
	}

	/** Our tasks fail with one line; an unexpected Python error arrives as a traceback: keep its last line. */
	static String lastLine(String text) {
		String[] lines = text.trim().split("\n");
		return lines.length == 0 ? "the Python worker failed" : lines[lines.length - 1].trim();
	}

	private static String str(Object o) {
		return o == null ? "" : String.valueOf(o);
	}

	private static long num(Object o) {
		return o instanceof Number ? ((Number) o).longValue() : -1;
	}
}
