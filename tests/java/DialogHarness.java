import ij.IJ;
import ij.ImageJ;
import ij.ImagePlus;
import ij.gui.GenericDialog;
import ij.gui.Overlay;
import ij.plugin.frame.Recorder;
import ij.plugin.frame.RoiManager;

import java.awt.AWTEvent;
import java.awt.Button;
import java.awt.Checkbox;
import java.awt.EventQueue;
import java.awt.Rectangle;
import java.awt.Robot;
import java.awt.TextField;
import java.awt.Toolkit;
import java.awt.Window;
import java.awt.event.ActionEvent;
import java.awt.event.ItemEvent;
import java.awt.event.TextEvent;
import java.awt.image.BufferedImage;
import java.io.File;
import java.io.FileOutputStream;
import java.util.Vector;

import javax.imageio.ImageIO;

/**
 * Test driver for the plugin's dialog, as a user meets it: ImageJ with its main window, the command started like a
 * menu click, Preview ticked, a threshold changed, a screenshot, OK. Prints "key=value" lines for the test.
 * Arguments: image, screenshot.png, recorder-output.txt. With a fourth argument "inspect" it only opens the
 * dialog, prints what it shows (each field's label and the key ImageJ's Recorder makes of it, the messages, the
 * models choice, the Help page it opens), takes the screenshot and cancels: no call runs.
 */
public class DialogHarness {
	public static void main(String[] args) {
		try {
			drive(args);
			System.exit(0);
		} catch (Throwable e) {
			e.printStackTrace();
			System.exit(1); // never leave a window waiting: the test would only see its timeout
		}
	}

	static void drive(String[] args) throws Exception {
		new ImageJ();
		ImagePlus imp = IJ.openImage(args[0]);
		imp.show();
		IJ.run(imp, "Set... ", "zoom=300 x=" + imp.getWidth() / 2 + " y=" + imp.getHeight() / 2);
		imp.getWindow().setLocation(10, 110);
		new Recorder();
		Recorder.getInstance().setLocation(10, 700);
		long t0 = System.currentTimeMillis();
		IJ.doCommand("micro-sam APG"); // a new thread without macro options: what a menu click does
		GenericDialog gd = waitForDialog("micro-sam APG", 240000);
		System.out.println("dialog_seconds=" + (System.currentTimeMillis() - t0) / 1000.0);
		gd.setLocation(imp.getWindow().getX() + imp.getWindow().getWidth() + 20, 110);
		gd.toFront();
		if (args.length > 3 && "inspect".equals(args[3])) {
			inspect(gd, args[1]);
			return;
		}
		if (args.length > 3 && "cancel".equals(args[3])) {
			press(gd, "Cancel");
			Thread.sleep(1500); // anything ImageJ would record after the command ends
			System.out.println("recorded=" + Recorder.getInstance().getText().replace("\n", "\\n"));
			return;
		}
		if (args.length > 4 && "choose".equals(args[3])) {
			choose(gd, args[4]);
			return;
		}
		if (args.length > 4 && "fail".equals(args[3])) {
			failing(gd, args[4]);
			return;
		}
		final GenericDialog dialog = gd;
		final Checkbox preview = gd.getPreviewCheckbox();
		// every user action on the event thread, one after the other, as real clicks and keys arrive
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				if (!preview.getState()) {
					preview.setState(true);
					dialog.itemStateChanged(new ItemEvent(preview, ItemEvent.ITEM_STATE_CHANGED, preview,
						ItemEvent.SELECTED));
				}
			}
		});
		t0 = System.currentTimeMillis();
		int first = waitForOverlay(imp, -1, 240000);
		System.out.println("preview_objects=" + first);
		System.out.println("first_preview_seconds=" + (System.currentTimeMillis() - t0) / 1000.0);
		// a threshold change re-runs APG on the cached embeddings
		Vector<?> numbers = gd.getNumericFields();
		final TextField center = (TextField) numbers.get(1);
		t0 = System.currentTimeMillis();
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				center.setText("0.3");
				dialog.textValueChanged(new TextEvent(center, TextEvent.TEXT_VALUE_CHANGED));
			}
		});
		int second = waitForOverlay(imp, first, 60000);
		System.out.println("updated_preview_objects=" + second);
		System.out.println("update_seconds=" + (System.currentTimeMillis() - t0) / 1000.0);
		Thread.sleep(800);
		Rectangle screen = new Rectangle(Toolkit.getDefaultToolkit().getScreenSize());
		BufferedImage shot = new Robot().createScreenCapture(screen);
		ImageIO.write(shot, "png", new File(args[1]));
		Button ok = null;
		for (Button b : gd.getButtons())
			if (b != null && "OK".equals(b.getLabel().trim()))
				ok = b;
		final ActionEvent okPressed = new ActionEvent(ok, ActionEvent.ACTION_PERFORMED, "OK");
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				dialog.actionPerformed(okPressed);
			}
		});
		long end = System.currentTimeMillis() + 120000;
		RoiManager rm = null;
		while (System.currentTimeMillis() < end) {
			rm = RoiManager.getInstance();
			if (rm != null && rm.getCount() > 0 && Recorder.getInstance() != null
				&& Recorder.getInstance().getText().contains("micro-sam APG"))
				break;
			Thread.sleep(200);
		}
		System.out.println("roi_manager_count=" + (rm == null ? 0 : rm.getCount()));
		System.out.println("overlay_after_ok=" + (imp.getOverlay() == null ? 0 : imp.getOverlay().size()));
		FileOutputStream out = new FileOutputStream(args[2]);
		out.write(Recorder.getInstance().getText().getBytes("UTF-8"));
		out.close();
	}

	/** Presses the dialog's button {@code label} on the event thread. */
	static void press(final GenericDialog gd, String label) throws Exception {
		Button button = null;
		for (Button b : gd.getButtons())
			if (b != null && label.equals(b.getLabel().trim()))
				button = b;
		final ActionEvent pressed = new ActionEvent(button, ActionEvent.ACTION_PERFORMED, label);
		EventQueue.invokeAndWait(() -> gd.actionPerformed(pressed));
	}

	/**
	 * Selects the model entry that contains {@code part}, presses OK, waits for the call, then prints what the
	 * Recorder recorded, the ROI Manager's count and the models the dialog will offer next time.
	 */
	static void choose(final GenericDialog gd, String part) throws Exception {
		final java.awt.Choice models = (java.awt.Choice) gd.getChoices().get(0);
		String item = null;
		for (int i = 0; i < models.getItemCount(); i++)
			if (models.getItem(i).contains(part))
				item = models.getItem(i);
		if (item == null)
			throw new IllegalStateException("no model entry with '" + part + "'");
		final String chosen = item;
		EventQueue.invokeAndWait(() -> {
			models.select(chosen);
			gd.itemStateChanged(new ItemEvent(models, ItemEvent.ITEM_STATE_CHANGED, chosen, ItemEvent.SELECTED));
		});
		press(gd, "OK");
		long end = System.currentTimeMillis() + 240000;
		RoiManager rm = RoiManager.getInstance();
		while (System.currentTimeMillis() < end && (rm == null || rm.getCount() == 0)) {
			Thread.sleep(200);
			rm = RoiManager.getInstance();
		}
		Thread.sleep(500); // the call remembers its model after adding the ROIs
		System.out.println("roi_manager_count=" + (rm == null ? 0 : rm.getCount()));
		System.out.println("recent0=" + ij.Prefs.get("microsam_fiji.recent0", ""));
		System.out.println("recorded=" + Recorder.getInstance().getText().replace("\n", "\\n"));
	}

	/**
	 * Chooses the model entry with {@code part} (one that cannot load), presses OK and waits for the error's box;
	 * prints its title and, once it is closed, what the status bar says (the call's "loading the model" must not
	 * stay).
	 */
	static void failing(final GenericDialog gd, String part) throws Exception {
		final java.awt.Choice models = (java.awt.Choice) gd.getChoices().get(0);
		String item = null;
		for (int i = 0; i < models.getItemCount(); i++)
			if (models.getItem(i).contains(part))
				item = models.getItem(i);
		final String chosen = item;
		EventQueue.invokeAndWait(() -> models.select(chosen));
		press(gd, "OK");
		long end = System.currentTimeMillis() + 120000;
		java.awt.Dialog box = null;
		while (box == null && System.currentTimeMillis() < end) {
			for (Window w : Window.getWindows())
				if (w instanceof java.awt.Dialog && w.isShowing() && w != gd
					&& ((java.awt.Dialog) w).getTitle().startsWith("micro-sam APG"))
					box = (java.awt.Dialog) w;
			Thread.sleep(100);
		}
		System.out.println("error_box=" + (box == null ? "" : box.getTitle()));
		final java.awt.Dialog open = box;
		if (open != null)
			EventQueue.invokeAndWait(() -> open.dispose());
		Thread.sleep(500);
		System.out.println("status=" + ImageJ.getStatusBarText());
	}

	/** Prints what the dialog shows, opens its Help, then cancels it. */
	static void inspect(final GenericDialog gd, String screenshot) throws Exception {
		for (java.awt.Component c : all(gd)) {
			if (c instanceof java.awt.Label)
				System.out.println("label=" + ((java.awt.Label) c).getText());
			else if (c instanceof Checkbox) {
				String text = ((Checkbox) c).getLabel();
				System.out.println("checkbox=" + text + "\tkey=" + ij.Macro.trimKey(text));
			} else if (c instanceof TextField) {
				System.out.println("field=" + ((TextField) c).getText());
			} else if (c instanceof java.awt.Choice) {
				java.awt.Choice ch = (java.awt.Choice) c;
				StringBuilder items = new StringBuilder();
				for (int i = 0; i < ch.getItemCount(); i++)
					items.append(i == 0 ? "" : ",").append(ch.getItem(i));
				System.out.println("choice=" + items);
			}
		}
		Thread.sleep(500);
		ImageIO.write(new Robot().createScreenCapture(new Rectangle(Toolkit.getDefaultToolkit().getScreenSize())),
			"png", new File(screenshot));
		Button help = null, cancel = null;
		for (Button b : gd.getButtons()) {
			if (b != null && "Help".equals(b.getLabel().trim()))
				help = b;
			if (b != null && "Cancel".equals(b.getLabel().trim()))
				cancel = b;
		}
		System.out.println("help_button=" + (help != null));
		if (help != null) {
			final ActionEvent pressed = new ActionEvent(help, ActionEvent.ACTION_PERFORMED, "Help");
			EventQueue.invokeLater(new Runnable() { // the page is a modal dialog: its own event loop
				public void run() {
					gd.actionPerformed(pressed);
				}
			});
			final Window page = waitForWindow("micro-sam APG Help", 20000);
			String text = "";
			for (java.awt.Component c : all(page))
				if (c instanceof javax.swing.JEditorPane)
					text = ((javax.swing.JEditorPane) c).getDocument().getText(0,
						((javax.swing.JEditorPane) c).getDocument().getLength());
			System.out.println("help_text=" + text.replaceAll("\\s+", " "));
			EventQueue.invokeAndWait(new Runnable() {
				public void run() {
					page.dispose();
				}
			});
		}
		final ActionEvent cancelled = new ActionEvent(cancel, ActionEvent.ACTION_PERFORMED, "Cancel");
		EventQueue.invokeAndWait(new Runnable() {
			public void run() {
				gd.actionPerformed(cancelled);
			}
		});
	}

	static java.util.List<java.awt.Component> all(java.awt.Container root) {
		java.util.List<java.awt.Component> found = new java.util.ArrayList<java.awt.Component>();
		for (java.awt.Component c : root.getComponents()) {
			found.add(c);
			if (c instanceof java.awt.Container)
				found.addAll(all((java.awt.Container) c));
		}
		return found;
	}

	static Window waitForWindow(String title, long millis) throws InterruptedException {
		long end = System.currentTimeMillis() + millis;
		while (System.currentTimeMillis() < end) {
			for (Window w : Window.getWindows()) {
				String t = w instanceof java.awt.Dialog ? ((java.awt.Dialog) w).getTitle()
					: w instanceof java.awt.Frame ? ((java.awt.Frame) w).getTitle() : "";
				if (w.isShowing() && title.equals(t))
					return w;
			}
			Thread.sleep(100);
		}
		throw new IllegalStateException("no window '" + title + "' within " + millis + " ms");
	}

	static GenericDialog waitForDialog(String title, long millis) throws InterruptedException {
		long end = System.currentTimeMillis() + millis;
		while (System.currentTimeMillis() < end) {
			for (Window w : Window.getWindows())
				if (w instanceof GenericDialog && w.isShowing() && title.equals(((GenericDialog) w).getTitle()))
					return (GenericDialog) w;
			Thread.sleep(100);
		}
		throw new IllegalStateException("no dialog '" + title + "' within " + millis + " ms");
	}

	/** Waits until the image shows a preview overlay whose size differs from {@code previous}. */
	static int waitForOverlay(ImagePlus imp, int previous, long millis) throws InterruptedException {
		long end = System.currentTimeMillis() + millis;
		while (System.currentTimeMillis() < end) {
			Overlay o = imp.getOverlay();
			if (o != null && o.size() > 0 && o.size() != previous)
				return o.size();
			Thread.sleep(50);
		}
		throw new IllegalStateException("no preview overlay within " + millis + " ms (status: " + IJ.getInstance() + ")");
	}
}
