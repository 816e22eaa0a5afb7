package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Macro;
import ij.WindowManager;
import ij.gui.Roi;
import ij.plugin.PlugIn;

/**
 * The ImageJ command {@code micro-sam Prompt}: the current selection (a point, a multi-point whose counter-1 points
 * are negative, a rectangle, an area) or, with {@code prompts=roi-manager}, the ROI Manager's own ROIs prompt
 * micro-sam for objects on the current image, which go to the ROI Manager as {@code micro-sam APG}'s do:
 *
 * <pre>makePoint(120, 80); run("micro-sam Prompt", "prompts=selection rois=[/out/RoiSet.zip]");</pre>
 *
 * <p>One {@link ApgCall} with the worker's {@code prompt} action: the selection and all ROIs of the ROI Manager go
 * to Python as ImageJ encodes them, Python decides which ROIs prompt, names the new objects after the ROI
 * Manager's and reuses the embeddings an earlier call cached for the image. No dialog: from the menu it prompts
 * with the current selection, and the Macro Recorder records {@code run("micro-sam Prompt");}. Errors are one line,
 * as {@link MicroSamAPG}'s; {@code call("microsam_fiji.MicroSamAPG.lastResult", key)} reports the last call of
 * either command. {@link MicroSamPromptTool} is the same call on a click.
 */
public class MicroSamPrompt implements PlugIn {
	public static final String COMMAND = "micro-sam Prompt";

	public void run(String arg) {
		MicroSamAPG.reporting(COMMAND, () -> {
			ImagePlus imp = WindowManager.getCurrentImage();
			if (imp == null)
				throw new PluginError("no image is open: open the image and make a selection on it first");
			Roi roi = imp.getRoi();
			Roi[] selection = roi == null ? new Roi[0] : new Roi[] {roi};
			int n = ApgCall.prompt(imp, Macro.getOptions(), selection, Rois.managerRois()).run().size();
			IJ.showStatus(COMMAND + ": " + n + (n == 1 ? " object" : " objects"));
		});
	}
}
