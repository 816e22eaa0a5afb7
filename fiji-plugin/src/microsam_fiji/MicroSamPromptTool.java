package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.gui.ImageCanvas;
import ij.gui.PointRoi;
import ij.gui.Roi;
import ij.gui.Toolbar;
import ij.plugin.frame.Recorder;
import ij.plugin.frame.RoiManager;
import ij.plugin.tool.PlugInTool;

import java.awt.Rectangle;
import java.awt.event.MouseEvent;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * A toolbar tool for {@code micro-sam Prompt} (Plugins › Segmentation › micro-sam Prompt Tool adds it): a click
 * on an object is a point prompt and the object appears in the ROI Manager; a shift-click adds a negative point to
 * the last object and segments it again (its ROI is replaced); a drag is a box prompt (a shift-click inside the box
 * then refines it). Each prompt is one {@link ApgCall} on the worker's {@code prompt} action, the same as the
 * command's, run one after the other on a thread of its own, never on the event thread; the status bar says what
 * happened ("micro-sam: cell-0012 added (0.3 s)"). The prompt stays on the image as its selection (negative
 * points in counter 1's colour). With the Recorder on, a click or a box is recorded as the macro that repeats it.
 */
public class MicroSamPromptTool extends PlugInTool {
	static final String NAME = "micro-sam Prompt Tool";
	/** A press and release farther apart than this (screen pixels) is a drag: a box. */
	private static final int DRAG = 4;
	private static final int NEGATIVE = 1; // the counter micro-sam Prompt reads as a negative point

	/** The object the last click or drag made, which a shift-click refines. */
	private static final class Prompted {
		final ImagePlus imp;
		final Rectangle box; // null: points only
		final List<int[]> points = new ArrayList<int[]>(); // x, y, counter
		volatile String name; // its ROI's name in the ROI Manager, once segmented

		Prompted(ImagePlus imp, Rectangle box) {
			this.imp = imp;
			this.box = box;
		}
	}

	private final ExecutorService calls = Executors.newSingleThreadExecutor(r -> {
		Thread t = new Thread(r, "micro-sam Prompt Tool");
		t.setDaemon(true);
		return t;
	});
	private Prompted last;
	private boolean pressed; // the left button went down on the image
	private int pressX, pressY; // screen
	private int startX, startY; // image

	public void run(String arg) {
		Toolbar.addPlugInTool(this);
		IJ.showStatus("micro-sam: click an object, shift-click to exclude, drag a box");
	}

	public String getToolName() {
		return NAME;
	}

	public String getToolIcon() {
		return "C037R11ddC0a0V6644Cf00V9a33";
	}

	public void mousePressed(ImagePlus imp, MouseEvent e) {
		pressed = e.getButton() == MouseEvent.BUTTON1 && !e.isPopupTrigger(); // a right-click is no prompt
		ImageCanvas canvas = imp.getCanvas();
		pressX = e.getX();
		pressY = e.getY();
		startX = canvas == null ? e.getX() : canvas.offScreenX(e.getX());
		startY = canvas == null ? e.getY() : canvas.offScreenY(e.getY());
		e.consume();
	}

	public void mouseDragged(ImagePlus imp, MouseEvent e) {
		if (pressed && isDrag(e))
			imp.setRoi(box(imp, e)); // the rubber band
		e.consume();
	}

	public void mouseReleased(ImagePlus imp, MouseEvent e) {
		e.consume();
		if (!pressed)
			return;
		pressed = false;
		if (isDrag(e)) {
			Rectangle r = box(imp, e);
			if (r.width < 1 || r.height < 1)
				return;
			last = new Prompted(imp, r);
			record("makeRectangle(" + r.x + ", " + r.y + ", " + r.width + ", " + r.height + ");\n"
				+ "run(\"" + MicroSamPrompt.COMMAND + "\");");
		} else if (e.isShiftDown()) {
			Prompted object = last;
			if (object == null || object.imp != imp) {
				IJ.showStatus("micro-sam: click an object first; a shift-click then excludes what it points at");
				return;
			}
			if (object.box != null && !object.box.contains(startX, startY)) {
				IJ.showStatus("micro-sam: a negative point for a box goes inside the box");
				return;
			}
			object.points.add(new int[] {startX, startY, NEGATIVE});
			record("// " + NAME + ": a negative point at " + startX + ", " + startY + " (macros cannot set counters)");
		} else {
			last = new Prompted(imp, null);
			last.points.add(new int[] {startX, startY, 0});
			record("makePoint(" + startX + ", " + startY + ");\nrun(\"" + MicroSamPrompt.COMMAND + "\");");
		}
		final Prompted object = last;
		final Roi[] selection = selection(object);
		imp.setRoi(selection[0]); // the box, or the points in their counters' colours
		calls.submit(() -> segment(object, selection));
	}

	/** Off the event thread, one prompt at a time: the worker call, then the status line. */
	private static void segment(Prompted object, Roi[] selection) {
		String replaced = object.name;
		try {
			List<Roi> rois = ApgCall.prompt(object.imp, "prompts=selection", selection, managerWithout(replaced))
				.replacing(replaced).run();
			Object seconds = ApgCall.last().get("seconds");
			if (rois.isEmpty()) {
				IJ.showStatus("micro-sam: no object there (" + seconds + " s)");
				return;
			}
			object.name = rois.get(0).getName();
			String what = replaced == null ? "added" : replaced.equals(object.name) ? "updated" : "replaces " + replaced;
			IJ.showStatus("micro-sam: " + object.name + " " + what + " (" + seconds + " s)");
		} catch (Worker.Cancelled e) {
			IJ.showStatus("micro-sam: cancelled");
		} catch (PluginError e) {
			fail(e.getMessage());
		} catch (RuntimeException e) {
			fail("failed (" + e + "); see the worker log");
		}
	}

	private static void fail(String message) {
		MicroSamAPG.clearProgress();
		IJ.showStatus("micro-sam: " + message);
		IJ.log(MicroSamPrompt.COMMAND + ": " + message);
		IJ.beep();
	}

	/**
	 * The ROI Manager's ROIs but the one being replaced: the new object's id then follows the others, so an
	 * object refined by a shift-click keeps its name.
	 */
	private static Roi[] managerWithout(String name) {
		Roi[] all = Rois.managerRois();
		RoiManager rm = RoiManager.getInstance();
		int skip = name == null || rm == null ? -1 : rm.getIndex(name);
		List<Roi> kept = new ArrayList<Roi>();
		for (int i = 0; i < all.length; i++)
			if (i != skip)
				kept.add(all[i]);
		return kept.toArray(new Roi[0]);
	}

	/** The prompt: the points (counter 1 negative), the box, or the box and the points inside it. */
	private static Roi[] selection(Prompted object) {
		PointRoi points = null;
		if (!object.points.isEmpty()) {
			int n = object.points.size();
			float[] xs = new float[n], ys = new float[n];
			int[] counters = new int[n];
			for (int i = 0; i < n; i++) {
				int[] p = object.points.get(i);
				xs[i] = p[0];
				ys[i] = p[1];
				counters[i] = p[2];
			}
			points = new PointRoi(xs, ys, n);
			points.setCounters(counters);
		}
		if (object.box == null)
			return new Roi[] {points};
		Roi box = new Roi(object.box);
		return points == null ? new Roi[] {box} : new Roi[] {box, points};
	}

	private boolean isDrag(MouseEvent e) {
		return Math.abs(e.getX() - pressX) > DRAG || Math.abs(e.getY() - pressY) > DRAG;
	}

	/** The rectangle from the press to {@code e}, on the image. */
	private Rectangle box(ImagePlus imp, MouseEvent e) {
		ImageCanvas canvas = imp.getCanvas();
		int x = canvas == null ? e.getX() : canvas.offScreenX(e.getX());
		int y = canvas == null ? e.getY() : canvas.offScreenY(e.getY());
		Rectangle r = new Rectangle(Math.min(x, startX), Math.min(y, startY), Math.abs(x - startX),
			Math.abs(y - startY));
		return r.intersection(new Rectangle(0, 0, imp.getWidth(), imp.getHeight()));
	}

	/** With the Recorder on: the macro that repeats a click or a box. */
	private static void record(String macro) {
		if (Recorder.record)
			Recorder.recordString(macro + "\n");
	}
}
