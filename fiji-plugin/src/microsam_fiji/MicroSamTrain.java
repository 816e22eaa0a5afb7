package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.WindowManager;
import ij.gui.Overlay;
import ij.gui.Roi;
import ij.macro.Interpreter;
import ij.plugin.PlugIn;

import java.awt.GraphicsEnvironment;
import java.io.File;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The ImageJ command {@code micro-sam Train}: fine-tunes μSAM (micro-sam's trainer, in the warm Python
 * {@link Worker}) on a folder of annotated images or on the open images and their ROIs, e.g. after correcting APG
 * with {@code micro-sam Prompt}:
 *
 * <pre>run("micro-sam Train", "out=[/data/models/cells.pt] minutes=15");
 * run("micro-sam APG", "model=[/data/models/cells.pt]");</pre>
 *
 * <p>Without {@code images=[folder]} every open image with ROIs is a training image: its overlay's ROIs, or for the
 * current image the ROI Manager's where it has no overlay. The options go to the worker unparsed (Python's table
 * of options; from the menu a dialog made from it, recorded as a macro line). Progress (iteration, loss,
 * validation, time left) shows on the status bar; Esc stops and keeps the best model so far. The new model is
 * offered in micro-sam APG's model choice.
 */
public class MicroSamTrain implements PlugIn {
	public static final String COMMAND = "micro-sam Train";

	public void run(String arg) {
		MicroSamAPG.reporting(COMMAND, () -> {
			String options = Macro.getOptions();
			boolean interactive = options == null && Interpreter.getInstance() == null
				&& !GraphicsEnvironment.isHeadless() && IJ.getInstance() != null;
			if (interactive) {
				options = new ApgDialog(WindowManager.getCurrentImage(), "train", COMMAND).show();
				if (options == null)
					return;
			}
			Map<String, Object> out = train(options == null ? "" : options);
			String model = String.valueOf(out.get("out"));
			if (!model.isEmpty())
				ApgDialog.remember(model); // offered in micro-sam APG's model choice
			Object before = out.get("msa_before"), after = out.get("msa_after");
			String score = before == null || after == null ? "" : "; validation mSA " + before + " -> " + after;
			IJ.log(COMMAND + ": " + model + " (" + out.get("iterations") + " iterations, " + out.get("minutes")
				+ " min, stopped: " + out.get("stopped") + score + ")");
			IJ.showStatus(COMMAND + ": wrote " + new File(model).getName());
		});
	}

	/** Sends the request (the open images and their ROIs, unless the options name a folder) and waits for it. */
	private static Map<String, Object> train(String options) {
		File scratch = ApgCall.scratchFolder();
		try {
			Map<String, Object> request = new LinkedHashMap<String, Object>();
			request.put("action", "train");
			request.put("options", options);
			request.put("scratch", scratch.getAbsolutePath());
			List<Object> images = new ArrayList<Object>(), rois = new ArrayList<Object>(), channels = new ArrayList<Object>();
			int[] ids = WindowManager.getIDList();
			ImagePlus current = WindowManager.getCurrentImage();
			for (int k = 0; ids != null && k < ids.length; k++) {
				ImagePlus imp = WindowManager.getImage(ids[k]);
				Roi[] own = roisOf(imp, imp == current);
				if (imp == null || own.length == 0)
					continue; // no annotations: not a training image
				images.add(Pixels.write(imp, new File(scratch, "image" + k + ".raw")));
				rois.add(Rois.write(own, new File(scratch, "rois" + k + ".zip")));
				channels.add(imp.getC());
			}
			request.put("images", images);
			request.put("rois", rois);
			request.put("current_channels", channels);
			IJ.resetEscape();
			return Worker.get().call(request, ApgCall.statusListener(COMMAND), true);
		} catch (IOException e) {
			throw new PluginError("could not hand the images to the worker (" + e.getMessage() + ")");
		} finally {
			ApgCall.deleteAll(scratch);
			IJ.showProgress(1.0);
		}
	}

	/** An image's annotations: its overlay, or the ROI Manager's ROIs for the current image without one. */
	private static Roi[] roisOf(ImagePlus imp, boolean current) {
		if (imp == null)
			return new Roi[0];
		Overlay overlay = imp.getOverlay();
		if (overlay != null && overlay.size() > 0)
			return overlay.toArray();
		return current ? Rois.managerRois() : new Roi[0];
	}
}
