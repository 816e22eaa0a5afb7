import ij.IJ;
import ij.ImageJ;
import ij.ImagePlus;
import ij.gui.ImageCanvas;
import ij.gui.PointRoi;
import ij.gui.Roi;
import ij.gui.Toolbar;
import ij.io.RoiEncoder;
import ij.plugin.frame.Recorder;
import ij.plugin.frame.RoiManager;

import java.awt.EventQueue;
import java.awt.event.InputEvent;
import java.awt.event.MouseEvent;
import java.io.File;
import java.io.FileOutputStream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;

/**
 * Test driver for the micro-sam Prompt Tool as a user meets it: ImageJ with its main window, the image zoomed to
 * 200 %, Plugins › Segmentation › micro-sam Prompt Tool (which puts the tool on the toolbar), then mouse events on
 * the image's canvas, dispatched on the event thread as real ones arrive: a click on an object, a shift-click (a
 * negative point), a drag (a box), a shift-click inside the box; then the command from the menu on a point
 * selection, with the Recorder open. Prints "key=value" lines; writes the ROI Manager after steps and the Recorder's
 * text.
 *
 * <p>Arguments: image, out folder, click x y, negative x y, box x0 y0 x1 y1, negative in the box x y, menu point
 * x y (image pixels).
 */
public class PromptToolHarness {
	public static void main(String[] args) {
		try {
			drive(args);
			System.exit(0);
		} catch (Throwable e) {
			e.printStackTrace();
			System.exit(1); // never leave a window waiting: the test would only see its timeout
		}
	}

	static int arg(String[] args, int i) {
		return Integer.parseInt(args[i]);
	}

	static void drive(String[] args) throws Exception {
		new ImageJ();
		ImagePlus imp = IJ.openImage(args[0]);
		imp.show();
		IJ.run(imp, "Set... ", "zoom=200 x=" + imp.getWidth() / 2 + " y=" + imp.getHeight() / 2);
		imp.getWindow().setLocation(10, 110);
		File out = new File(args[1]);
		new Recorder();
		Recorder.getInstance().setLocation(600, 110);
		IJ.run("micro-sam Prompt Tool"); // the menu command: the tool on the toolbar, selected
		System.out.println("tool=" + Toolbar.getPlugInTool().getToolName().replace(' ', '_'));
		final ImageCanvas canvas = imp.getCanvas();

		click(canvas, arg(args, 2), arg(args, 3), false);
		System.out.println("status_click=" + waitForReport(300000).replace(' ', '_'));
		System.out.println("count_click=" + RoiManager.getInstance().getCount());
		save(new File(out, "click.zip"));

		click(canvas, arg(args, 4), arg(args, 5), true);
		System.out.println("status_negative=" + waitForReport(120000).replace(' ', '_'));
		System.out.println("count_negative=" + RoiManager.getInstance().getCount());
		System.out.println("selection_counters=" + (imp.getRoi() instanceof PointRoi
			? java.util.Arrays.toString(((PointRoi) imp.getRoi()).getCounters()).replace(" ", "") : "none"));
		save(new File(out, "negative.zip"));

		drag(canvas, arg(args, 6), arg(args, 7), arg(args, 8), arg(args, 9));
		System.out.println("status_box=" + waitForReport(120000).replace(' ', '_'));
		System.out.println("count_box=" + RoiManager.getInstance().getCount());
		save(new File(out, "box.zip"));

		click(canvas, arg(args, 10), arg(args, 11), true); // inside the box: box and negative point
		System.out.println("status_box_negative=" + waitForReport(120000).replace(' ', '_'));
		System.out.println("count_box_negative=" + RoiManager.getInstance().getCount());

		// the command from the menu (no dialog) on the current selection: the Recorder records it
		imp.setRoi(new PointRoi(arg(args, 12), arg(args, 13)));
		IJ.doCommand("micro-sam Prompt");
		long end = System.currentTimeMillis() + 120000;
		while (RoiManager.getInstance().getCount() < 3 && System.currentTimeMillis() < end)
			Thread.sleep(100);
		Thread.sleep(500);
		System.out.println("count_menu=" + RoiManager.getInstance().getCount());
		save(new File(out, "all.zip"));
		FileOutputStream recorded = new FileOutputStream(new File(out, "recorder.txt"));
		recorded.write(Recorder.getInstance().getText().getBytes("UTF-8"));
		recorded.close();
	}

	/** All ROIs of the ROI Manager as a RoiSet.zip (its own "Save" writes a single ROI as a .roi file). */
	static void save(File file) throws Exception {
		ZipOutputStream zip = new ZipOutputStream(new FileOutputStream(file));
		Roi[] rois = RoiManager.getInstance().getRoisAsArray();
		for (int i = 0; i < rois.length; i++) {
			zip.putNextEntry(new ZipEntry(i + "-" + rois[i].getName() + ".roi"));
			zip.write(RoiEncoder.saveAsByteArray(rois[i]));
			zip.closeEntry();
		}
		zip.close();
	}

	/** A press and a release at image pixel (x, y), as the canvas receives a real click. */
	static void click(ImageCanvas canvas, int x, int y, boolean shift) throws Exception {
		int mods = InputEvent.BUTTON1_DOWN_MASK | (shift ? InputEvent.SHIFT_DOWN_MASK : 0);
		IJ.showStatus("");
		send(canvas, MouseEvent.MOUSE_PRESSED, canvas.screenX(x), canvas.screenY(y), mods);
		send(canvas, MouseEvent.MOUSE_RELEASED, canvas.screenX(x), canvas.screenY(y), mods);
	}

	static void drag(ImageCanvas canvas, int x0, int y0, int x1, int y1) throws Exception {
		int mods = InputEvent.BUTTON1_DOWN_MASK;
		IJ.showStatus("");
		send(canvas, MouseEvent.MOUSE_PRESSED, canvas.screenX(x0), canvas.screenY(y0), mods);
		for (int i = 1; i <= 4; i++)
			send(canvas, MouseEvent.MOUSE_DRAGGED, canvas.screenX(x0 + (x1 - x0) * i / 4),
				canvas.screenY(y0 + (y1 - y0) * i / 4), mods);
		send(canvas, MouseEvent.MOUSE_RELEASED, canvas.screenX(x1), canvas.screenY(y1), mods);
	}

	static void send(final ImageCanvas canvas, final int id, final int x, final int y, final int mods)
			throws Exception {
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				canvas.dispatchEvent(new MouseEvent(canvas, id, System.currentTimeMillis(), mods, x, y, 1, false,
					MouseEvent.BUTTON1));
			}
		});
	}

	/** The status bar's text once the tool reports (its result or its error, "micro-sam: ..."). */
	static String waitForReport(long millis) throws InterruptedException {
		long end = System.currentTimeMillis() + millis;
		String text = "";
		while (System.currentTimeMillis() < end) {
			text = ImageJ.getStatusBarText();
			if (text != null && text.startsWith("micro-sam: "))
				return text;
			Thread.sleep(50);
		}
		throw new IllegalStateException("the tool did not report within " + millis + " ms (status: " + text + ")");
	}
}
