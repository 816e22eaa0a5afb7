package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Prefs;
import ij.gui.DialogListener;
import ij.gui.GenericDialog;
import ij.gui.Overlay;
import ij.gui.Roi;

import java.awt.AWTEvent;
import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.TextField;
import java.awt.event.ItemEvent;
import java.io.File;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The dialog of a menu click: model (file field with Browse; it names the default; a choice of the recently used
 * models and those known by name), mode, the three thresholds (each label says which way it moves the result),
 * min_size, nms, replace, stack (for a stack: all planes, else the current one), Preview, an About line and Help
 * (this project's page from the jar: {@link Help}). While Preview is ticked, each change re-runs APG on the
 * worker's cached embeddings and shows the outlines as an overlay (the ROI Manager is not touched; a newer
 * change cancels a preview still running). Field labels start with the option keys, so ImageJ's Macro Recorder
 * records {@code run("micro-sam APG", "model=[...] mode=apg foreground=0.5 ...")}: the macro grammar.
 */
final class ApgDialog implements DialogListener {
	private static final String PREFIX = "microsam_fiji.";
	private static final String[] MODES = {"apg", "ais"};
	// key, label, digits, fallback (micro-sam's defaults). A label's first word is the option key (ImageJ's
	// Recorder records it); the rest says which way the value moves the result (Help says more)
	private static final String[][] NUMBERS = {
		{"foreground", "foreground threshold (higher: fewer objects, faint ones dropped)", "2", "0.5"},
		{"center", "center distance threshold (lower: touching objects split; higher: merged)", "2", "0.5"},
		{"boundary", "boundary distance threshold (lower: touching objects split; higher: merged)", "2", "0.5"},
		{"min_size", "min_size (pixels: smaller objects dropped)", "0", "25"},
		{"nms", "nms threshold (lower: fewer overlapping objects kept)", "2", "0.9"}};
	static final String DEMO = "demo"; // the bundled model: what an empty field means without install-fiji --model
	private static final int RECENT = 8;

	private final ImagePlus imp;
	private final Overlay original;
	private final Object lock = new Object();
	private String pending; // options of the preview to run next
	private volatile boolean restart; // a newer change arrived: cancel the preview that runs
	private volatile boolean closed;
	private Thread previewThread;
	private String finalOptions;
	private Choice recentChoice;
	private TextField modelField;
	private final List<String> recent = new ArrayList<String>();
	private String defaultItem; // the models choice's entry for the default (an empty field)
	private int planes; // the image's planes (slices x frames): a "stack" checkbox when more than one

	ApgDialog(ImagePlus imp) {
		this.imp = imp;
		this.original = imp.getOverlay();
	}

	/** Shows the dialog; returns the macro options or null when cancelled. */
	String show() {
		// the dialog opens at once; the worker starts behind it (tens of seconds): a preview or OK waits for it,
		// and a worker that cannot start says why on the status bar now and as the OK'd call's error
		Worker running = Worker.current();
		if (running == null)
			startWorker();
		@SuppressWarnings("unchecked")
		Map<String, Object> defaults = running != null && running.hello.get("defaults") instanceof Map
			? (Map<String, Object>) running.hello.get("defaults") : null;
		for (int i = 0; i < RECENT; i++) {
			String m = Prefs.get(PREFIX + "recent" + i, "");
			if (!m.isEmpty() && !recent.contains(m))
				recent.add(m);
		}
		String defaultModel = DEMO, known = "";
		try {
			Config config = Config.load();
			defaultModel = config.model.isEmpty() ? DEMO : config.model;
			known = config.models;
		} catch (PluginError e) {
			// not set up: the OK'd call says so in one line; the dialog still shows
		}
		// the choice offers the recently used models first, then the ones known by name (microsam-fiji models)
		defaultItem = "default (" + new File(defaultModel).getName() + ")";
		List<String> offered = new ArrayList<String>(recent);
		offered.add(recent.isEmpty() ? 0 : 1, defaultItem); // chosen: the field empties
		for (String name : known.split(","))
			if (!name.trim().isEmpty() && !offered.contains(name.trim()))
				offered.add(name.trim());
		GenericDialog gd = new GenericDialog(MicroSamAPG.COMMAND);
		// mode is the first choice: getNextChoice reads it; the models choice is read from its component (so the
		// Recorder records only model=, from the file field it fills in)
		gd.addChoice("mode", MODES, Prefs.get(PREFIX + "mode", "apg"));
		gd.addFileField("model (empty: default, " + new File(defaultModel).getName() + ")",
			recent.isEmpty() ? "" : recent.get(0), 40);
		modelField = (TextField) gd.getStringFields().lastElement();
		if (offered.size() > 1) {
			gd.addChoice("Models (recent, default, by name)", offered.toArray(new String[0]), offered.get(0));
			recentChoice = (Choice) gd.getChoices().lastElement();
		}
		for (String[] n : NUMBERS) {
			double fallback = Double.parseDouble(n[3]);
			if (defaults != null && defaults.get(n[0]) instanceof Number)
				fallback = ((Number) defaults.get(n[0])).doubleValue();
			gd.addNumericField(n[1], Prefs.get(PREFIX + n[0], fallback), Integer.parseInt(n[2]));
		}
		gd.addCheckbox("replace ROIs in the ROI Manager", false);
		planes = imp.getNSlices() * imp.getNFrames();
		if (planes > 1) // as ImageJ's filters ask "Process all N slices?"; recorded as `stack`
			gd.addCheckbox("stack (process all " + planes + " planes; else only the current one)", false);
		gd.addPreviewCheckbox(null);
		gd.getPreviewCheckbox().setState(Prefs.get(PREFIX + "preview", false));
		gd.addDialogListener(this);
		gd.addMessage(Help.about());
		gd.addHelp(Help.page(defaultModel, known));
		if (gd.getPreviewCheckbox().getState())
			schedule(options(gd, false));
		gd.showDialog();
		closed = true;
		synchronized (lock) {
			pending = null;
			restart = true;
			lock.notifyAll();
		}
		waitForPreview();
		imp.setOverlay(original);
		if (gd.wasCanceled())
			return null;
		Prefs.set(PREFIX + "preview", gd.getPreviewCheckbox().getState());
		return finalOptions != null ? finalOptions : options(gd, true);
	}

	private static void startWorker() {
		Thread t = new Thread(new Runnable() {
			public void run() {
				IJ.showStatus(MicroSamAPG.COMMAND + ": starting the Python worker...");
				try {
					Worker.get();
					IJ.showStatus(MicroSamAPG.COMMAND + ": the Python worker is ready");
				} catch (PluginError e) {
					IJ.showStatus(MicroSamAPG.COMMAND + ": " + e.getMessage());
				}
			}
		}, "micro-sam worker start");
		t.setDaemon(true);
		t.start();
	}

	public boolean dialogItemChanged(GenericDialog gd, AWTEvent e) {
		if (e != null && (gd.wasOKed() || gd.wasCanceled()))
			return true; // a late event of the closing dialog: reading the fields now would record them again
		if (e != null && recentChoice != null && e.getSource() == recentChoice && e instanceof ItemEvent) {
			String chosen = recentChoice.getSelectedItem();
			modelField.setText(chosen.equals(defaultItem) ? "" : chosen);
		}
		// e == null: ImageJ's last call after OK, when the Recorder takes the values read here; they are the
		// result (reading the fields again afterwards would record them a second time)
		String options = options(gd, e == null);
		if (options == null)
			return false;
		if (e == null) {
			finalOptions = options;
			return true;
		}
		Checkbox preview = gd.getPreviewCheckbox();
		if (preview != null && preview.getState())
			schedule(options);
		else if (preview != null && e.getSource() == preview) {
			synchronized (lock) {
				pending = null;
				restart = true;
			}
			imp.setOverlay(original);
		}
		return true;
	}

	/** The options the fields say (read with getNext*, which ImageJ records); null if a number is invalid. */
	private String options(GenericDialog gd, boolean remember) {
		String model = gd.getNextString().trim();
		String mode = gd.getNextChoice();
		StringBuilder sb = new StringBuilder();
		if (!model.isEmpty())
			sb.append("model=[").append(model).append("] ");
		sb.append("mode=").append(mode);
		for (String[] n : NUMBERS) {
			double v = gd.getNextNumber();
			if (Double.isNaN(v))
				return null;
			String text = n[2].equals("0") ? String.valueOf(Math.round(v)) : IJ.d2s(v, 4).replaceAll("0+$", "")
				.replaceAll("\\.$", "");
			sb.append(' ').append(n[0]).append('=').append(text);
			if (remember)
				Prefs.set(PREFIX + n[0], v);
		}
		if (gd.getNextBoolean())
			sb.append(" replace");
		if (planes > 1 && gd.getNextBoolean())
			sb.append(" stack");
		if (remember) {
			Prefs.set(PREFIX + "mode", mode);
			if (!model.isEmpty()) {
				recent.remove(model);
				recent.add(0, model);
				for (int i = 0; i < RECENT; i++)
					Prefs.set(PREFIX + "recent" + i, i < recent.size() ? recent.get(i) : "");
			}
		}
		return sb.toString();
	}

	private void schedule(String options) {
		synchronized (lock) {
			pending = options;
			restart = true;
			lock.notifyAll();
			if (previewThread == null) {
				previewThread = new Thread(new Runnable() {
					public void run() {
						previewLoop();
					}
				}, "micro-sam preview");
				previewThread.setDaemon(true);
				previewThread.start();
			}
		}
	}

	private void waitForPreview() {
		Thread t;
		synchronized (lock) {
			t = previewThread;
		}
		if (t != null) {
			try {
				t.join(30000);
			} catch (InterruptedException e) {
				Thread.currentThread().interrupt();
			}
		}
	}

	private void previewLoop() {
		while (true) {
			String options;
			synchronized (lock) {
				while (pending == null && !closed) {
					try {
						lock.wait();
					} catch (InterruptedException e) {
						return;
					}
				}
				if (closed)
					return;
				options = pending;
				pending = null;
				restart = false;
			}
			File scratch = ApgCall.scratchFolder();
			try {
				Map<String, Object> out = new ApgCall(imp, options).send(true, scratch, new Worker.Listener() {
					public void update(String message, long current, long maximum) {
						IJ.showStatus(MicroSamAPG.COMMAND + " preview: " + message
							+ (maximum > 0 ? " " + current + "/" + maximum : ""));
					}

					public boolean cancelRequested() {
						return restart || closed;
					}
				});
				List<Roi> rois = Rois.read(new File(String.valueOf(out.get("rois"))));
				if (!restart && !closed) {
					imp.setOverlay(Rois.overlay(rois));
					IJ.showStatus(MicroSamAPG.COMMAND + " preview: " + rois.size() + " objects");
				}
			} catch (Worker.Cancelled e) {
				// a newer change or the closed dialog: nothing to show
			} catch (PluginError e) {
				IJ.showStatus(MicroSamAPG.COMMAND + " preview: " + e.getMessage());
			} catch (Exception e) {
				IJ.showStatus(MicroSamAPG.COMMAND + " preview failed: " + e);
			} finally {
				ApgCall.deleteAll(scratch);
			}
		}
	}
}
