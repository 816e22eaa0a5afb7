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
	private static final String SCRIPT = "from microsam_fiji.worker.tasks import handle\nhandle(task, request)";
	/**
	 * A cancelled task is waited for as long as the worker answers: its heartbeat (an UPDATE without message,
	 * every 2 s) says it is busy between progress points, and stopping it would lose the loaded model. Only a
	 * worker silent this long after a CANCEL is hung: stopped (a preview's task is abandoned instead).
	 */
	private static final long HUNG_MS = 30000;

	private static Worker instance;

	private final Process process;
	private final Channel channel;
	private final File log;
	/** The log's length when this worker started: its own lines follow. */
	private final long logStart;
	private final String python;
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
		ApgCall.removeStaleScratch(); // left by a call killed mid-run (ImageJ closed, the machine stopped)
		this.python = config.python;
		this.logStart = log.length();
		List<String> command = new ArrayList<String>();
		command.add(config.python);
		command.add("-m");
		command.add("microsam_fiji.worker.worker");
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
		stamp(log, "starting " + command);
		pb.redirectError(ProcessBuilder.Redirect.appendTo(log));
		try {
			process = pb.start();
		} catch (IOException e) {
			throw new PluginError("cannot start the Python worker '" + config.python + "' (" + e.getMessage()
				+ "): " + Config.SETUP);
		}
		channel = new Channel(process.getInputStream(), process.getOutputStream());
		Runtime.getRuntime().addShutdownHook(new Thread(this::stop, "micro-sam worker shutdown"));
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

	/**
	 * The worker's log in a folder of this user's own ({@code <tmp>/micro-sam-fiji-<user>/}): a shared folder
	 * made by whichever user ran first would not be writable for the next one.
	 */
	private static File logFile() {
		File dir = userFolder();
		File log = new File(dir, "worker.log");
		if (!dir.isDirectory() || (log.exists() ? !log.canWrite() : !dir.canWrite()))
			throw new PluginError("cannot write the worker log " + log + ": make " + dir
				+ " writable for you (or remove it), or set java.io.tmpdir to a folder of yours");
		return log;
	}

	/** {@code <tmp>/micro-sam-fiji-<user>/}: the log and the calls' scratch folders. */
	static File userFolder() {
		String user = System.getProperty("user.name", "user").replaceAll("[^A-Za-z0-9._-]", "_");
		File dir = new File(System.getProperty("java.io.tmpdir"), "micro-sam-fiji-" + user);
		dir.mkdirs();
		return dir;
	}

	/** A dated line in the log, so its lines tell which start and which call they belong to. */
	private static void stamp(File log, String text) {
		try {
			java.io.Writer w = new java.io.OutputStreamWriter(new java.io.FileOutputStream(log, true), "UTF-8");
			try {
				w.write(new java.text.SimpleDateFormat("yyyy-MM-dd HH:mm:ss").format(new java.util.Date())
					+ " [plugin] " + text + "\n");
			} finally {
				w.close();
			}
		} catch (IOException ignored) {
			// the log is only for the user's reading
		}
	}

	/** What this worker wrote to its log so far (at most the last 64 KiB). */
	private String logTail() {
		try {
			java.io.RandomAccessFile f = new java.io.RandomAccessFile(log, "r");
			try {
				long start = Math.max(logStart, f.length() - 65536);
				byte[] bytes = new byte[(int) Math.max(0, f.length() - start)];
				f.seek(start);
				f.readFully(bytes);
				return new String(bytes, "UTF-8");
			} finally {
				f.close();
			}
		} catch (IOException e) {
			return "";
		}
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
		String tail = logTail();
		java.util.regex.Matcher missing = java.util.regex.Pattern.compile("No module named '?([A-Za-z0-9_.]+)")
			.matcher(tail);
		if (missing.find()) {
			// a retry cannot help: the configured Python lacks the package or a library it needs (a package
			// found on PYTHONPATH without its dependencies)
			String module = missing.group(1);
			boolean ours = module.startsWith("microsam_fiji") || module.startsWith("appose");
			return "the Python '" + python + "' does not have micro-sam-fiji" + (ours ? "" : " (or what it needs: no "
				+ "module '" + module + "')") + ": run '" + python + " -m pip install micro-sam-fiji', or "
				+ Config.SETUP + " (log: " + log + ")";
		}
		return "the Python worker stopped" + code + "; the next call starts a new one (log: " + log + ")";
	}

	/**
	 * Runs one request and returns its outputs. Throws {@link PluginError} with the worker's one-line message on
	 * failure, {@link Cancelled} when the listener asked to cancel and the worker confirmed.
	 */
	Map<String, Object> call(Map<String, Object> request, Listener listener) {
		return call(request, listener, true);
	}

	/**
	 * As {@link #call(Map, Listener)}; {@code mayStop} false (the dialog's preview): a hung cancelled task is
	 * abandoned, never the shared worker stopped under another call.
	 */
	Map<String, Object> call(Map<String, Object> request, Listener listener, boolean mayStop) {
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
			long heard = System.currentTimeMillis(); // the worker's last message of any kind
			boolean launched = false;
			while (true) {
				Channel.Response response = task.poll(100);
				if (response == null) {
					long now = System.currentTimeMillis();
					if (cancelSent == 0 && listener != null && listener.cancelRequested()) {
						cancel(task);
						cancelSent = now;
						if (listener != null)
							listener.update("cancelling...", -1, -1);
					} else if (cancelSent > 0 && now - Math.max(cancelSent, heard) > HUNG_MS) {
						if (mayStop)
							stop(); // hung: the next call starts a fresh worker
						throw new Cancelled();
					}
					if ((stopped || !channel.isOpen()) && task.drained())
						throw launched ? new PluginError(crashMessage()) : new Gone(crashMessage());
					continue;
				}
				String type = response.type;
				heard = System.currentTimeMillis();
				if ("LAUNCH".equals(type)) {
					launched = true;
				} else if ("UPDATE".equals(type)) {
					boolean heartbeat = response.message().isEmpty() && response.current() < 0;
					if (listener != null && !heartbeat && cancelSent == 0)
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
