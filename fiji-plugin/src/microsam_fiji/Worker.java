package microsam_fiji;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The warm Python worker process: one per ImageJ session, started on first use with the interpreter from
 * {@link Config}, kept while ImageJ runs (the model stays loaded, per-image embeddings stay cached), ended when
 * ImageJ exits (its stdin closes).
 *
 * <p>It speaks Appose's worker protocol through a {@link Channel} on its stdin and stdout, served by Appose's own
 * Python worker ({@code appose.python_worker}); no network socket. The worker's stderr goes to a log file. This
 * class owns the process: starting it, the handshake, stopping it, and what to do when it is stuck or gone.
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

	/** What each EXECUTE runs in the worker: the request goes to the plugin's Python side, one entry point. */
	private static final String SCRIPT = "from microsam_fiji.plugin.tasks import handle\nhandle(task, request)";
	/** A worker that does not confirm a CANCEL within this time is stuck between progress points: ended. */
	private static final long CANCEL_TIMEOUT_MS = 60000;

	private static Worker instance;

	private final Process process;
	private final Channel channel;
	private final File log;
	private volatile boolean stopped;
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
		channel = new Channel(process.getInputStream(), process.getOutputStream());
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

	/** Not stopped, its stdout still open, and the process running. */
	boolean isAlive() {
		if (stopped || !channel.isOpen())
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
		stopped = true;
		try {
			channel.close(); // the worker exits when its stdin closes
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
	Map<String, Object> call(Map<String, Object> request, Listener listener) {
		Map<String, Object> inputs = new LinkedHashMap<String, Object>();
		inputs.put("request", request);
		Channel.Task task;
		try {
			task = channel.execute(SCRIPT, inputs);
		} catch (IOException e) {
			throw new Gone(crashMessage());
		}
		try {
			long cancelSent = 0; // when CANCEL went out
			boolean launched = false;
			while (true) {
				Channel.Response response = task.poll(100);
				if (response == null) {
					if (cancelSent == 0 && listener != null && listener.cancelRequested()) {
						cancel(task);
						cancelSent = System.currentTimeMillis();
					} else if (cancelSent > 0 && System.currentTimeMillis() - cancelSent > CANCEL_TIMEOUT_MS) {
						stop(); // the next call starts a fresh worker
						throw new Cancelled();
					}
					if ((stopped || !channel.isOpen()) && task.drained())
						throw launched ? new PluginError(crashMessage()) : new Gone(crashMessage());
					continue;
				}
				String type = response.type;
				if ("LAUNCH".equals(type)) {
					launched = true;
				} else if ("UPDATE".equals(type)) {
					if (listener != null)
						listener.update(response.message(), response.current(), response.maximum());
				} else if ("COMPLETION".equals(type)) {
					return response.outputs();
				} else if ("CANCELATION".equals(type)) {
					throw new Cancelled();
				} else if ("FAILURE".equals(type)) {
					throw new PluginError(lastLine(response.error()));
				} else if ("CRASH".equals(type)) {
					throw launched ? new PluginError(crashMessage()) : new Gone(crashMessage());
				}
			}
		} catch (InterruptedException e) {
			Thread.currentThread().interrupt();
			throw new Cancelled();
		} finally {
			task.close();
		}
	}

	private void cancel(Channel.Task task) {
		try {
			task.cancel();
		} catch (IOException e) {
			throw new Gone(crashMessage()); // the pipe broke: as any request that cannot be written
		}
	}

	/** Our tasks fail with one line; an unexpected Python error arrives as a traceback: keep its last line. */
	static String lastLine(String text) {
		String[] lines = text.trim().split("\n");
		return lines.length == 0 ? "the Python worker failed" : lines[lines.length - 1].trim();
	}
}
