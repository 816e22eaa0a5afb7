package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.gui.Roi;

import java.io.File;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One segment request for one image and its macro options: the pixels go to the {@link Worker} through a scratch
 * folder, the worker's outputs come back, and {@link #run} applies them (ROIs to the ROI Manager, labels shown,
 * warnings to the Log). The dialog's preview uses {@link #send} alone and draws an overlay instead.
 */
final class ApgCall {
	/** Two macros calling at once are served one after the other. */
	private static final Object CALLS = new Object();
	private static volatile Map<String, Object> last = new LinkedHashMap<String, Object>();
	private static volatile int completed;

	private final ImagePlus imp;
	private final String options;

	ApgCall(ImagePlus imp, String options) {
		this.imp = imp;
		this.options = options == null ? "" : options;
	}

	/** The outputs of the last completed {@link #run} (empty before the first): for macros' call(...). */
	static Map<String, Object> last() {
		return last;
	}

	/** How many {@link #run}s of this ImageJ session have completed. */
	static int completed() {
		return completed;
	}

	/** Segments the image and applies the result; returns the number of ROIs added. */
	int run() {
		synchronized (CALLS) {
			File scratch = scratchFolder();
			try {
				Map<String, Object> out = send(false, scratch, statusListener());
				last = out;
				completed++;
				return apply(out);
			} catch (IOException e) {
				throw new PluginError("could not read the worker's results (" + e.getMessage() + ")");
			} finally {
				deleteAll(scratch);
			}
		}
	}

	/** The request: the image's pixels to a file in {@code scratch}, the worker's outputs back. */
	Map<String, Object> send(boolean preview, File scratch, Worker.Listener listener) {
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

	/** The outputs into ImageJ: warnings to the Log, ROIs to the ROI Manager, the labels image when asked. */
	private int apply(Map<String, Object> out) throws IOException {
		if (out.get("warnings") instanceof List)
			for (Object w : (List<?>) out.get("warnings"))
				IJ.log(MicroSamAPG.COMMAND + ": " + w); // e.g. the image was rescaled: not only in the worker's log
		List<Roi> rois = Rois.read(new File(String.valueOf(out.get("rois"))));
		Rois.add(Rois.target(), rois, imp, Boolean.TRUE.equals(out.get("replace")));
		Object shown = out.get("show");
		if (shown instanceof String && !((String) shown).isEmpty()) {
			ImagePlus labels = IJ.openImage((String) shown);
			labels.setTitle(imp.getTitle() + "-labels");
			labels.show();
		}
		return rois.size();
	}

	/** Progress on ImageJ's status bar; Esc cancels. */
	private static Worker.Listener statusListener() {
		return new Worker.Listener() {
			public void update(String message, long current, long maximum) {
				String counts = maximum > 0 ? " " + current + "/" + maximum : "";
				IJ.showStatus(MicroSamAPG.COMMAND + ": " + message + counts);
				if (maximum > 0)
					IJ.showProgress((int) current, (int) maximum);
			}

			public boolean cancelRequested() {
				return IJ.escapePressed();
			}
		};
	}

	/** A new folder for one request's files (the image handed over, the worker's outputs). */
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
}
