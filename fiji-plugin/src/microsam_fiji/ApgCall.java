package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.gui.Roi;
import ij.plugin.frame.RoiManager;

import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One request for one image and its macro options, {@code segment} ({@code micro-sam APG}) or {@code prompt}
 * ({@code micro-sam Prompt}): the pixels (and for a prompt the selection and the ROI Manager's ROIs) go to the
 * {@link Worker} through a scratch folder, the worker's outputs come back, and {@link #run} applies them (ROIs to
 * the ROI Manager, labels shown, warnings to the Log). The two actions have the same outputs; Python decides
 * everything else. The dialog's preview uses {@link #send} alone and draws an overlay instead.
 */
final class ApgCall {
	/** Two macros calling at once are served one after the other. */
	private static final Object CALLS = new Object();
	private static volatile Map<String, Object> last = new LinkedHashMap<String, Object>();
	private static volatile int completed;

	private final String command;
	private final String action;
	private final ImagePlus imp;
	private final String options;
	/** prompt only: the selection (none, one ROI, or a box with its points) and the ROI Manager's ROIs */
	private Roi[] selection = new Roi[0];
	private Roi[] manager = new Roi[0];
	/** prompt only: the name of an object in the ROI Manager that the result replaces (the tool's shift-click) */
	private String replacing;
	/** this call's outputs, once {@link #run} completed */
	private Map<String, Object> lastOutputs;

	/** A {@code micro-sam APG} call. */
	ApgCall(ImagePlus imp, String options) {
		this(MicroSamAPG.COMMAND, "segment", imp, options);
	}

	private ApgCall(String command, String action, ImagePlus imp, String options) {
		this.command = command;
		this.action = action;
		this.imp = imp;
		this.options = options == null ? "" : options;
	}

	/** A {@code micro-sam Prompt} call: {@code selection} (empty: none) and {@code manager} prompt as Python decides. */
	static ApgCall prompt(ImagePlus imp, String options, Roi[] selection, Roi[] manager) {
		ApgCall call = new ApgCall(MicroSamPrompt.COMMAND, "prompt", imp, options);
		call.selection = selection;
		call.manager = manager;
		return call;
	}

	/** The result replaces the ROI Manager's ROI named {@code name} (when it is still there) instead of adding. */
	ApgCall replacing(String name) {
		this.replacing = name;
		return this;
	}

	/** The model the last {@link #run} of this call used ("" before it completed): the worker names it. */
	String model() {
		Object m = lastOutputs == null ? null : lastOutputs.get("model");
		return m == null ? "" : String.valueOf(m);
	}

	/** The outputs of the last completed {@link #run} of either command (empty before the first). */
	static Map<String, Object> last() {
		return last;
	}

	/** How many {@link #run}s of this ImageJ session have completed. */
	static int completed() {
		return completed;
	}

	/** Runs the request and applies the result; returns the ROIs added to the ROI Manager. */
	List<Roi> run() {
		synchronized (CALLS) {
			File scratch = scratchFolder();
			try {
				Map<String, Object> out = send(false, scratch, statusListener(command));
				List<Roi> rois = apply(out);
				out.put("command", command);
				last = out;
				lastOutputs = out;
				completed++;
				return rois;
			} catch (IOException e) {
				throw new PluginError("could not read the worker's results (" + e.getMessage() + ")");
			} finally {
				deleteAll(scratch);
				IJ.showProgress(1.0); // no half-filled progress bar after a call, however it ended
			}
		}
	}

	/**
	 * The request: the image's pixels (and a prompt's ROIs) to files in {@code scratch}, the worker's outputs back.
	 * One call at a time, the preview's too: an OK'd call waits until a cancelled preview has been answered (the
	 * worker then has the model and, often, the embeddings); a preview never stops the shared worker.
	 */
	Map<String, Object> send(boolean preview, File scratch, Worker.Listener listener) {
		synchronized (CALLS) {
			return sendNow(preview, scratch, listener);
		}
	}

	private Map<String, Object> sendNow(boolean preview, File scratch, Worker.Listener listener) {
		Worker worker = Worker.get();
		Map<String, Object> request = new LinkedHashMap<String, Object>();
		request.put("action", action);
		request.put("options", options);
		request.put("scratch", scratch.getAbsolutePath());
		// the ROI Manager's names: Python names the new ROIs after them (the numbering is decided there)
		List<String> names = new ArrayList<String>();
		for (Roi r : Rois.managerRois())
			if (r.getName() != null)
				names.add(r.getName());
		request.put("manager_names", names);
		if (replacing != null)
			request.put("replacing", replacing);
		try {
			request.put("image", Pixels.write(imp, new File(scratch, "image.raw")));
			if ("prompt".equals(action)) {
				request.put("selection", selection.length == 0 ? ""
					: Rois.write(selection, new File(scratch, selection.length == 1 ? "selection.roi" : "selection.zip")));
				request.put("manager", manager.length == 0 ? "" : Rois.write(manager, new File(scratch, "manager.zip")));
				request.put("current_plane", imp.getCurrentSlice() - 1);
			} else {
				// the image's area selection restricts the command to it; points and lines do not
				Roi roi = imp.getRoi();
				request.put("selection", roi == null || !roi.isArea() ? ""
					: Rois.write(new Roi[] {roi}, new File(scratch, "selection.roi")));
				// the plane segmented without `stack` (and by a preview)
				request.put("current_plane", imp.getCurrentSlice() - 1);
				request.put("preview", preview);
			}
		} catch (IOException e) {
			throw new PluginError("could not hand the image to the worker (" + e.getMessage() + ")");
		}
		if (!preview)
			IJ.resetEscape(); // the preview's thread must not swallow an Esc meant for a macro's call
		try {
			return worker.call(request, listener, !preview);
		} catch (Worker.Gone e) {
			// killed or crashed between calls, before this task started: once more on a fresh worker
			return Worker.get().call(request, listener, !preview);
		}
	}

	/** The outputs into ImageJ: warnings to the Log, ROIs to the ROI Manager, the labels image when asked. */
	private List<Roi> apply(Map<String, Object> out) throws IOException {
		if (out.get("warnings") instanceof List)
			for (Object w : (List<?>) out.get("warnings"))
				IJ.log(command + ": " + w); // e.g. the image was rescaled: not only in the worker's log
		List<Roi> rois = Rois.read(new File(String.valueOf(out.get("rois"))));
		RoiManager rm = Rois.target();
		// Python decided the names and whether the result replaces the object the Prompt Tool refines
		Object replaces = out.get("replaces");
		int old = replaces instanceof String && !((String) replaces).isEmpty() ? rm.getIndex((String) replaces) : -1;
		if (old >= 0 && rois.size() == 1)
			Rois.replace(rm, old, rois.get(0), imp);
		else
			Rois.add(rm, rois, imp, Boolean.TRUE.equals(out.get("replace")));
		Object table = out.get("table");
		if (table instanceof String && !((String) table).isEmpty()) // a prompt's objects join the APG call's table
			Rois.showTable((String) table, String.valueOf(out.get("table_title")), "prompt".equals(action));
		Object shown = out.get("show");
		if (shown instanceof String && !((String) shown).isEmpty()) {
			ImagePlus labels = IJ.openImage((String) shown);
			labels.setTitle(imp.getTitle() + "-labels");
			labels.show();
		}
		return rois;
	}

	/** Progress on ImageJ's status bar; Esc cancels. */
	static Worker.Listener statusListener(String command) {
		return new Worker.Listener() {
			public void update(String message, long current, long maximum) {
				String counts = maximum > 0 ? " " + current + "/" + maximum : "";
				IJ.showStatus(command + ": " + message + counts);
				if (maximum > 0)
					IJ.showProgress((int) current, (int) maximum);
			}

			public boolean cancelRequested() {
				return IJ.escapePressed();
			}
		};
	}

	private static final String SCRATCH = "call-";
	/** A scratch folder untouched this long belongs to no running call (calls read their image first). */
	private static final long STALE_MS = 3600 * 1000L;

	/** A new folder for one request's files (the image handed over, the worker's outputs). */
	static File scratchFolder() {
		try {
			return java.nio.file.Files.createTempDirectory(Worker.userFolder().toPath(), SCRATCH).toFile();
		} catch (IOException e) {
			throw new PluginError("cannot create a temporary folder (" + e.getMessage() + "): free some disk space");
		}
	}

	/** Removes the scratch folders of calls killed mid-run: an hour old, so another ImageJ's calls keep theirs. */
	static void removeStaleScratch() {
		File[] folders = Worker.userFolder().listFiles();
		long now = System.currentTimeMillis();
		if (folders != null)
			for (File f : folders)
				if (f.isDirectory() && f.getName().startsWith(SCRATCH) && now - f.lastModified() > STALE_MS)
					deleteAll(f);
	}

	static void deleteAll(File file) {
		File[] children = file.listFiles();
		if (children != null)
			for (File child : children)
				deleteAll(child);
		file.delete();
	}
}
