import ij.IJ;
import ij.ImageJ;
import ij.ImagePlus;

import ij.gui.GenericDialog;

import java.awt.Button;
import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.EventQueue;
import java.awt.event.ActionEvent;
import java.awt.event.ItemEvent;
import java.awt.event.KeyEvent;

/**
 * Test driver for Esc during a long encoding (issue 20): ImageJ with its main window, {@code micro-sam APG} on an
 * image whose passes take seconds; once the status bar says the image is being encoded, Esc as the user presses
 * it. Prints "key=value" lines: cancel_seconds (Esc to the call's return), the worker's pid before and after, and
 * the next call's outputs (encoded, the worker kept its model). Then the dialog on another image: Preview ticked
 * (its encoding starts), unticked 4 s later, OK: the OK'd call must return its result on the same worker.
 * Arguments: image, model path.
 */
public class CancelHarness {
	public static void main(String[] args) {
		try {
			drive(args);
			System.exit(0);
		} catch (Throwable e) {
			e.printStackTrace();
			System.exit(1);
		}
	}

	static void drive(String[] args) throws Exception {
		new ImageJ();
		final ImagePlus imp = IJ.openImage(args[0]);
		imp.show();
		final String options = "model=[" + args[1] + "] mode=ais";
		final String[] error = {""};
		Thread call = new Thread(new Runnable() {
			public void run() {
				try {
					IJ.run(imp, "micro-sam APG", options);
				} catch (Throwable e) {
					error[0] = String.valueOf(e);
				}
			}
		});
		long t0 = System.currentTimeMillis();
		call.start();
		String status = "";
		while (call.isAlive() && !(status = String.valueOf(ImageJ.getStatusBarText())).contains("encoding"))
			Thread.sleep(50);
		System.out.println("encoding_after_seconds=" + (System.currentTimeMillis() - t0) / 1000.0);
		System.out.println("pid_before=" + microsam_fiji.MicroSamAPG.workerPid());
		Thread.sleep(1500); // well inside the image's passes (encoder, then the instance decoder)
		long esc = System.currentTimeMillis();
		IJ.setKeyDown(KeyEvent.VK_ESCAPE);
		call.join(120000);
		System.out.println("cancel_seconds=" + (System.currentTimeMillis() - esc) / 1000.0);
		System.out.println("first_completed=" + microsam_fiji.MicroSamAPG.completedCalls());
		IJ.resetEscape();
		IJ.run(imp, "micro-sam APG", options);
		System.out.println("pid_after=" + microsam_fiji.MicroSamAPG.workerPid());
		System.out.println("second_completed=" + microsam_fiji.MicroSamAPG.completedCalls());
		System.out.println("second_encoded=" + microsam_fiji.MicroSamAPG.lastResult("encoded"));
		System.out.println("second_count=" + microsam_fiji.MicroSamAPG.lastResult("count"));
		System.out.println("second_model_loads=" + microsam_fiji.MicroSamAPG.lastResult("model_loads"));
		previewThenOk(imp, args[1]);
	}

	static void previewThenOk(ImagePlus imp, final String model) throws Exception {
		ImagePlus other = imp.duplicate();
		IJ.run(other, "Flip Horizontally", ""); // new pixels (the same nuclei elsewhere): the preview must encode
		other.setTitle("other");
		other.show();
		IJ.wait(500);
		// the dialog offers the models that worked before (the second call's): one choice, the model first
		ij.Prefs.set("microsam_fiji.recent0", model);
		IJ.doCommand("micro-sam APG");
		final GenericDialog gd = DialogHarness.waitForDialog("micro-sam APG", 60000);
		final Checkbox preview = gd.getPreviewCheckbox();
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				((Choice) gd.getChoices().get(0)).select(model);
				((Choice) gd.getChoices().get(1)).select("ais");
				preview.setState(true);
				gd.itemStateChanged(new ItemEvent(preview, ItemEvent.ITEM_STATE_CHANGED, preview, ItemEvent.SELECTED));
			}
		});
		long t0 = System.currentTimeMillis();
		while (!String.valueOf(ImageJ.getStatusBarText()).contains("preview: encoding")
			&& System.currentTimeMillis() - t0 < 60000)
			Thread.sleep(50);
		System.out.println("preview_encoding_after_seconds=" + (System.currentTimeMillis() - t0) / 1000.0);
		Thread.sleep(4000);
		Button ok = null;
		for (Button b : gd.getButtons())
			if (b != null && "OK".equals(b.getLabel().trim()))
				ok = b;
		final ActionEvent okPressed = new ActionEvent(ok, ActionEvent.ACTION_PERFORMED, "OK");
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				preview.setState(false);
				gd.itemStateChanged(new ItemEvent(preview, ItemEvent.ITEM_STATE_CHANGED, preview,
					ItemEvent.DESELECTED));
			}
		});
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				gd.actionPerformed(okPressed);
			}
		});
		long okAt = System.currentTimeMillis();
		while (!"2".equals(microsam_fiji.MicroSamAPG.completedCalls()) && System.currentTimeMillis() - okAt < 240000)
			Thread.sleep(100);
		System.out.println("ok_seconds=" + (System.currentTimeMillis() - okAt) / 1000.0);
		System.out.println("third_completed=" + microsam_fiji.MicroSamAPG.completedCalls());
		System.out.println("pid_after_preview=" + microsam_fiji.MicroSamAPG.workerPid());
		System.out.println("third_count=" + microsam_fiji.MicroSamAPG.lastResult("count"));
		System.out.println("third_model_loads=" + microsam_fiji.MicroSamAPG.lastResult("model_loads"));
	}
}
