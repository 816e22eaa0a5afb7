package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.WindowManager;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;

import java.awt.GraphicsEnvironment;

/**
 * The ImageJ command {@code micro-sam APG} in a Fiji or ImageJ started the usual way:
 *
 * <pre>run("micro-sam APG", "model=[/path/model.zip] center=0.4 min_size=30 replace rois=[/out/RoiSet.zip]");</pre>
 *
 * <p>It segments the current image in the warm Python {@link Worker} and adds one ROI per object to the ROI
 * Manager (kept unless {@code replace}): one {@link ApgCall}. The option string goes to the worker unparsed:
 * Python's {@code microsam_fiji.command.options} is the one grammar, shared with the in-process command. Run from
 * the menu without options it opens {@link ApgDialog}, whose values the Macro Recorder records with the same keys.
 * This class is the entry point only: picking the image and the options, and reporting errors ImageJ's way; its
 * static methods are what macros reach with {@code call("microsam_fiji.MicroSamAPG....")}.
 *
 * <p>Errors are one line: inside a macro they stop it as ImageJ's own macro errors do; without ImageJ's main
 * window ({@code -batch}, headless) the line goes to stderr and the macro stops without any dialog.
 */
public class MicroSamAPG implements PlugIn {
	public static final String COMMAND = "micro-sam APG";

	/**
	 * For macros: {@code call("microsam_fiji.MicroSamAPG.lastResult", "count")} is the last call's number of
	 * objects, the last call of {@code micro-sam APG} or {@code micro-sam Prompt} (and its tool), whichever came
	 * last; other keys: {@code encoded} (image encoder runs, 0 when the embeddings were cached), {@code seconds}
	 * (the worker's time), {@code model}, {@code command} (which of the two). Empty when unknown.
	 */
	public static String lastResult(String key) {
		Object value = ApgCall.last().get(key);
		return value == null ? "" : String.valueOf(value);
	}

	/** For macros: how many calls of this ImageJ session have completed (to wait for one started elsewhere). */
	public static String completedCalls() {
		return String.valueOf(ApgCall.completed());
	}

	/** For macros and tests: the process id of the running worker, or "" when none runs. */
	public static String workerPid() {
		Worker w = Worker.current();
		return w == null ? "" : String.valueOf(w.pid());
	}

	public void run(String arg) {
		reporting(COMMAND, () -> {
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
			ApgCall call = new ApgCall(imp, options);
			int n = call.run().size();
			ApgDialog.remember(call.model()); // offered again only because it worked
			IJ.showStatus(COMMAND + ": " + n + " objects");
		});
	}

	/**
	 * Runs a command's {@code body}; a failure is one line, reported with {@link #report}; Esc cancels quietly.
	 * Either way the status bar and the progress bar are cleared of the call's last progress.
	 */
	static void reporting(String command, Runnable body) {
		try {
			body.run();
		} catch (Worker.Cancelled e) {
			IJ.showStatus(command + ": cancelled");
			IJ.showProgress(1.0);
		} catch (PluginError e) {
			clearProgress();
			report(command, e.getMessage());
		} catch (RuntimeException e) {
			if (Macro.MACRO_CANCELED.equals(e.getMessage()))
				throw e;
			clearProgress();
			report(command, "failed (" + e + "); see the worker log");
		}
	}

	/** A failed call leaves no "loading the model" and no half-filled progress bar behind. */
	static void clearProgress() {
		IJ.showStatus("");
		IJ.showProgress(1.0);
	}

	/**
	 * Stops the running macro with "{@code command}: {@code message}" (ImageJ's own way); never a dialog without
	 * a main window.
	 */
	static void report(String command, String message) {
		String full = command + ": " + message;
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
			IJ.error(command, message);
	}
}
