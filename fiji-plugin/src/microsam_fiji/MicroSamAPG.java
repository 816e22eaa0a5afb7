package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.WindowManager;
import ij.gui.Roi;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;

import java.awt.GraphicsEnvironment;
import java.io.File;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The ImageJ command {@code micro-sam APG} in a Fiji or ImageJ started the usual way:
 *
 * <pre>run("micro-sam APG", "model=[/path/model.zip] center=0.4 min_size=30 replace rois=[/out/RoiSet.zip]");</pre>
 *
 * <p>It segments the current image in the warm Python {@link Worker} and adds one ROI per object to the ROI
 * Manager (kept unless {@code replace}). The option string goes to the worker unparsed: Python's
 * {@code microsam_fiji.macro.options} is the one grammar, shared with the in-process command. Run from the menu
 * without options it opens {@link ApgDialog}, whose values the Macro Recorder records with the same keys.
 *
 * <p>Errors are one line: inside a macro they stop it as ImageJ's own macro errors do; without ImageJ's main
 * window ({@code -batch}, headless) the line goes to stderr and the macro stops without any dialog.
 */
public class MicroSamAPG implements PlugIn {
	public static final String COMMAND = "micro-sam APG";
	/** Two macros calling at once are served one after the other. */
	private static final Object CALLS = new Object();
	private static volatile Map<String, Object> last = new LinkedHashMap<String, Object>();

	/**
	 * For macros: {@code call("microsam_fiji.MicroSamAPG.lastResult", "count")} is the last call's number of
	 * objects; other keys: {@code encoded} (image encoder runs, 0 when the embeddings were cached),
	 * {@code seconds} (the worker's time), {@code model}. Empty when unknown.
	 */
	public static String lastResult(String key) {
		Object value = last.get(key);
		return value == null ? "" : String.valueOf(value);
	}

	/** For macros: how many calls of this ImageJ session have completed (to wait for one started elsewhere). */
	public static String completedCalls() {
		return String.valueOf(completed);
	}

	private static volatile int completed;

	/** For macros and tests: the process id of the running worker, or "" when none runs. */
	public static String workerPid() {
		Worker w = Worker.current();
		return w == null ? "" : String.valueOf(w.pid());
	}

	public void run(String arg) {
		try {
			String options = Macro.getOptions();
			boolean interactive = options == null && Interpreter.getInstance() == null
				&& !GraphicsEnvironment.isHeadless() && IJ.getInstance() != null;
			ImagePlus imp = WindowManager.getCurrentImage();
			if (imp == null)
				throw new PluginError("no image is open: open or select the image to segment first");
			if (interactive) {
				options = new ApgDialog(imp).show();
				if (options == null)
					return;
			}
			int n = segment(imp, options == null ? "" : options);
			IJ.showStatus(COMMAND + ": " + n + " objects");
		} catch (Worker.Cancelled e) {
			IJ.showStatus(COMMAND + ": cancelled");
			IJ.showProgress(1.0);
		} catch (PluginError e) {
			report(e.getMessage());
		} catch (RuntimeException e) {
			if (Macro.MACRO_CANCELED.equals(e.getMessage()))
				throw e;
			report("failed (" + e + "); see the worker log");
		}
	}

	/** Segments {@code imp} with the macro options and applies the result; returns the number of ROIs. */
	static int segment(ImagePlus imp, String options) {
		synchronized (CALLS) {
			File scratch = scratchFolder();
			try {
				Map<String, Object> out = call(imp, options, false, scratch, statusListener());
				last = out;
				completed++;
				if (out.get("warnings") instanceof List)
					for (Object w : (List<?>) out.get("warnings"))
						IJ.log(COMMAND + ": " + w); // e.g. the image was rescaled: shown, not only in the worker's log
				List<Roi> rois = Rois.read(new File(String.valueOf(out.get("rois"))));
				Rois.add(Rois.target(), rois, imp, Boolean.TRUE.equals(out.get("replace")));
				Object shown = out.get("show");
				if (shown instanceof String && !((String) shown).isEmpty()) {
					ImagePlus labels = IJ.openImage((String) shown);
					labels.setTitle(imp.getTitle() + "-labels");
					labels.show();
				}
				return rois.size();
			} catch (IOException e) {
				throw new PluginError("could not read the worker's results (" + e.getMessage() + ")");
			} finally {
				deleteAll(scratch);
			}
		}
	}

	/** One segment request: the image's pixels to a scratch file, the worker's outputs back. */
	static Map<String, Object> call(ImagePlus imp, String options, boolean preview, File scratch,
		Worker.Listener listener) {
		Worker worker = Worker.get();
		Map<String, Object> request = new LinkedHashMap<String, Object>();
		request.put("action", "segment");
		request.put("options", options);
		request.put("preview", preview);
		request.put("scratch", scratch.getAbsolutePath());
		try {
			request.put("image", Pixels.write(imp, new File(scratch, "image.raw")));
		} catch (IOException e) {
			throw new PluginError("could not hand the image to the worker (" + e.getMessage() + ")");
		}
		IJ.resetEscape();
		try {
			return worker.call(request, listener);
		} catch (Worker.Gone e) {
			// killed or crashed between calls, before this task started: once more on a fresh worker
			return Worker.get().call(request, listener);
		}
	}

	static Worker.Listener statusListener() {
		return new Worker.Listener() {
			public void update(String message, long current, long maximum) {
				String counts = maximum > 0 ? " " + current + "/" + maximum : "";
				IJ.showStatus(COMMAND + ": " + message + counts);
				if (maximum > 0)
					IJ.showProgress((int) current, (int) maximum);
			}

			public boolean cancelRequested() {
				return IJ.escapePressed();
			}
		};
	}

	static File scratchFolder() {
		try {
			return java.nio.file.Files.createTempDirectory("micro-sam-fiji-").toFile();
		} catch (IOException e) {
			throw new PluginError("cannot create a temporary folder (" + e.getMessage() + "): free some disk space");
		}
	}

	static void deleteAll(File file) {
		File[] children = file.listFiles();
		if (children != null)
			for (File child : children)
				deleteAll(child);
		file.delete();
	}

	/** Stops the running macro with {@code message} (ImageJ's own way); never a dialog without a main window. */
	static void report(String message) {
		String full = COMMAND + ": " + message;
		boolean noWindow = IJ.getInstance() == null || GraphicsEnvironment.isHeadless();
		Interpreter interp = Interpreter.getInstance();
		if (noWindow) {
			System.err.println(full);
			if (interp != null) {
				interp.setIgnoreErrors(true); // abort() without a dialog; the macro ends here
				interp.abort(full);
			}
			return;
		}
		if (interp != null)
			interp.abort(full); // "Macro Error" box, then the macro unwinds (unless the macro ignores errors)
		else
			IJ.error(COMMAND, message);
	}
}
