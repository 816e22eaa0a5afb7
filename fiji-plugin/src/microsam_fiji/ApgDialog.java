package microsam_fiji;

import ij.IJ;
import ij.ImagePlus;
import ij.Prefs;
import ij.gui.DialogListener;
import ij.gui.GenericDialog;
import ij.gui.Overlay;
import ij.gui.Roi;
import ij.io.OpenDialog;
import ij.plugin.frame.Recorder;

import java.awt.AWTEvent;
import java.awt.Checkbox;
import java.awt.Choice;
import java.awt.event.ItemEvent;
import java.io.File;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The dialog of a menu click, rendered from the fields the Python worker sends at start (Python's
 * {@code microsam_fiji.command.options}: the one table of the command's options, with micro-sam's defaults): this
 * class holds no labels or defaults, only how each kind of field is shown and written back as an option string.
 * Kinds: {@code model} (one choice: the default, the models that worked before, the models by name, and "Other
 * file..."), {@code choice}, {@code number}, {@code integer}, {@code flag}, {@code file}, {@code pair},
 * {@code text}; a field {@code shown} only on a {@code stack} appears when the image has several planes.
 *
 * <p>While Preview is ticked, each change re-runs APG on the worker's cached embeddings and shows the outlines as
 * an overlay (the ROI Manager is not touched; a newer change cancels a preview still running). OK records the
 * option string this dialog builds (so a value with a ']' is written in quotes, which ImageJ's own recording
 * cannot); Cancel records nothing, as ImageJ's own commands.
 */
final class ApgDialog implements DialogListener {
	private static final String PREFIX = "microsam_fiji.";
	private static final int RECENT = 8;
	private static final String OTHER = "Other file...";

	private final ImagePlus imp;
	private final Overlay original;
	private final Object lock = new Object();
	private String pending; // options of the preview to run next
	private volatile boolean restart; // a newer change arrived: cancel the preview that runs
	private volatile boolean closed;
	private Thread previewThread;
	private final List<Map<String, Object>> fields = new ArrayList<Map<String, Object>>();
	private int planes; // the image's planes (slices x frames): fields shown on a stack appear when more than one
	private Choice modelChoice;
	/** the model choice's entries: what each shows -> the value written as model=... ("" for the default) */
	private final Map<String, String> models = new LinkedHashMap<String, String>();
	private String lastModelItem;

	private final String command; // the table's command: "apg" or "train"
	private final String title;

	/** The dialog of {@code micro-sam APG} on {@code imp}, with Preview. */
	ApgDialog(ImagePlus imp) {
		this(imp, "apg", MicroSamAPG.COMMAND);
	}

	/** The dialog of the table's {@code command} (APG has Preview; {@code imp} may be null for other commands). */
	ApgDialog(ImagePlus imp, String command, String title) {
		this.imp = imp;
		this.original = imp == null ? null : imp.getOverlay();
		this.command = command;
		this.title = title;
	}

	private boolean previewing() {
		return "apg".equals(command) && imp != null;
	}

	/** The models that a call with {@code model=...} completed with, most recent first (the dialog offers them). */
	static List<String> recentModels() {
		List<String> recent = new ArrayList<String>();
		for (int i = 0; i < RECENT; i++) {
			String m = Prefs.get(PREFIX + "recent" + i, "");
			if (!m.isEmpty() && !recent.contains(m))
				recent.add(m);
		}
		return recent;
	}

	/** Remembers a model after a call with it completed: a path that failed is never offered again. */
	static void remember(String model) {
		if (model == null || model.isEmpty())
			return;
		List<String> recent = recentModels();
		recent.remove(model);
		recent.add(0, model);
		for (int i = 0; i < RECENT; i++)
			Prefs.set(PREFIX + "recent" + i, i < recent.size() ? recent.get(i) : "");
	}

	/** Shows the dialog; returns the macro options or null when cancelled (then nothing is recorded). */
	String show() {
		// the fields come from the worker (its start answers within a second or two; the model loads later)
		Worker worker = Worker.current();
		if (worker == null) {
			IJ.showStatus(MicroSamAPG.COMMAND + ": starting the Python worker...");
			worker = Worker.get();
			IJ.showStatus("");
		}
		fields.addAll(fieldsOf(worker.hello, command));
		planes = imp == null ? 1 : imp.getNSlices() * imp.getNFrames();
		String defaultModel = Config.DEMO, known = "";
		try {
			Config config = Config.load();
			defaultModel = config.model.isEmpty() ? Config.DEMO : config.model;
			known = config.models;
		} catch (PluginError e) {
			// the worker runs, so the set-up is readable; a broken file shows the bundled default here
		}
		GenericDialog gd = new GenericDialog(title);
		for (Map<String, Object> f : fields) {
			if (!shown(f))
				continue;
			String key = (String) f.get("key"), kind = (String) f.get("kind");
			String label = ((String) f.get("label")).replace("{planes}", String.valueOf(planes))
				.replace("{slices}", String.valueOf(imp == null ? 1 : imp.getNSlices()));
			Object def = f.get("default");
			if ("model".equals(kind)) {
				String[] items = modelItems(defaultModel, known);
				gd.addChoice(label, items, items[0]);
				modelChoice = (Choice) gd.getChoices().lastElement();
				lastModelItem = items[0];
			} else if ("choice".equals(kind)) {
				String[] choices = strings(f.get("choices"));
				gd.addChoice(label, choices, Prefs.get(prefix() + key, def == null ? choices[0] : String.valueOf(def)));
			} else if ("channel".equals(kind)) {
				String[] channels = channelItems();
				gd.addChoice(label, channels, channels[Math.max(0, imp.getC() - 1)]); // the current channel
			} else if (("number".equals(kind) || "integer".equals(kind)) && def == null) {
				gd.addStringField(label, "", 6); // empty: micro-sam's own choice (off)
			} else if ("number".equals(kind) || "integer".equals(kind)) {
				double fallback = def instanceof Number ? ((Number) def).doubleValue() : 0;
				gd.addNumericField(label, Prefs.get(prefix() + key, fallback), ((Number) f.get("digits")).intValue());
			} else if ("flag".equals(kind)) {
				gd.addCheckbox(label, false);
			} else if ("file".equals(kind)) {
				gd.addFileField(label, "", 30);
			} else if ("folder".equals(kind)) {
				gd.addDirectoryField(label, "", 30);
			} else if (("number".equals(kind) || "integer".equals(kind))) {
				gd.addStringField(label, "", 6); // (a number field with a default is above)
			} else {
				gd.addStringField(label, def == null ? "" : String.valueOf(def), 12);
			}
		}
		if (previewing()) {
			gd.addPreviewCheckbox(null);
			gd.getPreviewCheckbox().setState(Prefs.get(PREFIX + "preview", false));
		}
		gd.addDialogListener(this);
		gd.addMessage(Help.about());
		String rows = String.valueOf(helpOf(worker.hello, command));
		gd.addHelp("apg".equals(command) ? Help.page(defaultModel, known, rows) : Help.list(title, rows));
		if (previewing() && gd.getPreviewCheckbox().getState())
			schedule(options(gd, false));
		gd.showDialog();
		closed = true;
		synchronized (lock) {
			pending = null;
			restart = true;
			lock.notifyAll();
		}
		waitForPreview();
		if (imp != null)
			imp.setOverlay(original);
		// what OK means is recorded below, as this dialog wrote it; ImageJ's own recording of the fields is off
		// (and a Cancel records nothing at all, as ImageJ's own commands)
		Recorder.disableCommandRecording();
		if (gd.wasCanceled())
			return null;
		if (previewing())
			Prefs.set(PREFIX + "preview", gd.getPreviewCheckbox().getState());
		String options = options(gd, true);
		if (options != null && Recorder.record)
			Recorder.recordString("run(\"" + title + "\", \"" + Recorder.fixString(options) + "\");\n");
		return options;
	}

	/** Where a field's last value is remembered: APG's keys as before, other commands' under their name. */
	private String prefix() {
		return "apg".equals(command) ? PREFIX : PREFIX + command + ".";
	}

	/** The worker's dialog fields for {@code command} (hello's "dialog"). */
	@SuppressWarnings("unchecked")
	static List<Map<String, Object>> fieldsOf(Map<String, Object> hello, String command) {
		Object dialog = hello.get("dialog");
		Object list = dialog instanceof Map ? ((Map<String, Object>) dialog).get(command) : null;
		if (!(list instanceof List))
			throw new PluginError("the Python worker sent no dialog: run 'microsam-fiji install-fiji "
				+ Config.pluginFolder().getParentFile() + "' again");
		List<Map<String, Object>> out = new ArrayList<Map<String, Object>>();
		for (Object f : (List<Object>) list)
			out.add((Map<String, Object>) f);
		return out;
	}

	@SuppressWarnings("unchecked")
	static Object helpOf(Map<String, Object> hello, String command) {
		Object help = hello.get("help");
		return help instanceof Map ? ((Map<String, Object>) help).get(command) : "";
	}

	/** Whether the image has what the field needs: several planes (stack), z slices (zstack), channels. */
	private boolean shown(Map<String, Object> f) {
		Object when = f.get("shown");
		if (imp == null)
			return "always".equals(when);
		if ("stack".equals(when))
			return planes > 1;
		if ("zstack".equals(when))
			return imp.getNSlices() > 1;
		if ("channels".equals(when))
			return imp.getNChannels() > 1;
		return !"never".equals(when);
	}

	/**
	 * The channel choice: the image's channels by number and name (the slice label ImageJ keeps a channel's name
	 * in, e.g. "DAPI"; else the channel's colour).
	 */
	private String[] channelItems() {
		String[] items = new String[imp.getNChannels()];
		for (int c = 1; c <= items.length; c++) {
			String label = imp.getStack().getSliceLabel(imp.getStackIndex(c, imp.getZ(), imp.getT()));
			String name = label == null ? "" : label.split("\n")[0].trim();
			if (name.isEmpty() && imp.isComposite()) {
				ij.process.LUT lut = ((ij.CompositeImage) imp).getChannelLut(c);
				// the LUT's brightest entry is its colour
				name = lut == null ? "" : colorName(new java.awt.Color(lut.getRGB(255)));
			}
			items[c - 1] = c + (name.isEmpty() ? "" : ": " + name);
		}
		return items;
	}

	private static String colorName(java.awt.Color c) {
		int r = c.getRed(), g = c.getGreen(), b = c.getBlue();
		if (r > 0 && g == 0 && b == 0) return "red";
		if (r == 0 && g > 0 && b == 0) return "green";
		if (r == 0 && g == 0 && b > 0) return "blue";
		if (r > 0 && g > 0 && b == 0) return "yellow";
		if (r > 0 && g == 0 && b > 0) return "magenta";
		if (r == 0 && g > 0 && b > 0) return "cyan";
		return r > 0 && r == g && g == b ? "grays" : "";
	}

	private static String[] strings(Object list) {
		List<String> out = new ArrayList<String>();
		if (list instanceof List)
			for (Object o : (List<?>) list)
				out.add(String.valueOf(o));
		return out.toArray(new String[0]);
	}

	/**
	 * The model choice: the default first, the models that worked before, the models install-fiji listed by name
	 * (those other than the bundled demo are downloaded on first use), and "Other file...". One entry per model.
	 */
	private String[] modelItems(String defaultModel, String known) {
		models.clear();
		String defaultName = new File(defaultModel).getName();
		models.put("default (" + defaultName + ")", "");
		for (String m : recentModels())
			if (!m.equals(defaultModel) && !models.containsValue(m))
				models.put(m, m);
		for (String name : known.split(",")) {
			String n = name.trim();
			if (n.isEmpty() || n.equals(defaultModel) || n.equals(defaultName) || models.containsValue(n))
				continue;
			models.put(Config.DEMO.equals(n) ? n : n + " (downloaded on first use)", n);
		}
		models.put(OTHER, null);
		return models.keySet().toArray(new String[0]);
	}

	public boolean dialogItemChanged(GenericDialog gd, AWTEvent e) {
		if (e != null && (gd.wasOKed() || gd.wasCanceled()))
			return true; // a late event of the closing dialog
		if (e != null && modelChoice != null && e.getSource() == modelChoice && e instanceof ItemEvent)
			chooseModel();
		if (e == null)
			return options(gd, false) != null; // ImageJ's last call after OK: only whether the numbers are valid
		String options = options(gd, false);
		if (options == null)
			return false;
		Checkbox preview = previewing() ? gd.getPreviewCheckbox() : null;
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

	/** "Other file..." asks for a file and adds it to the choice (cancelled: the choice goes back). */
	private void chooseModel() {
		String item = modelChoice.getSelectedItem();
		if (!OTHER.equals(item)) {
			lastModelItem = item;
			return;
		}
		OpenDialog od = new OpenDialog("micro-sam model (.pt checkpoint, .zip package or rdf.yaml)");
		if (od.getFileName() == null) {
			modelChoice.select(lastModelItem);
			return;
		}
		String path = new File(od.getDirectory(), od.getFileName()).getPath();
		if (!models.containsKey(path)) {
			models.put(path, path);
			modelChoice.insert(path, modelChoice.getItemCount() - 1);
		}
		modelChoice.select(path);
		lastModelItem = path;
	}

	/** The options the fields say, as a macro writes them; null if a number is invalid. */
	private String options(GenericDialog gd, boolean remember) {
		StringBuilder sb = new StringBuilder();
		for (Map<String, Object> f : fields) {
			if (!shown(f))
				continue;
			String key = (String) f.get("key"), kind = (String) f.get("kind");
			String value = null;
			if ("model".equals(kind)) {
				String item = gd.getNextChoice();
				value = models.get(item);
				if (value == null) // "Other file..." still selected: the default
					value = "";
			} else if ("choice".equals(kind)) {
				value = gd.getNextChoice();
				if (remember)
					Prefs.set(prefix() + key, value);
			} else if ("channel".equals(kind)) {
				value = gd.getNextChoice().split(":")[0]; // "2: GFP" -> 2
			} else if (("number".equals(kind) || "integer".equals(kind)) && f.get("default") == null) {
				value = gd.getNextString().trim();
			} else if ("number".equals(kind) || "integer".equals(kind)) {
				double v = gd.getNextNumber();
				if (Double.isNaN(v))
					return null;
				value = "integer".equals(kind) ? String.valueOf(Math.round(v))
					: IJ.d2s(v, 4).replaceAll("0+$", "").replaceAll("\\.$", "");
				if (remember)
					Prefs.set(prefix() + key, v);
			} else if ("flag".equals(kind)) {
				if (gd.getNextBoolean())
					append(sb, key);
				continue;
			} else {
				value = gd.getNextString().trim();
			}
			if (!value.isEmpty())
				append(sb, key + "=" + quoted(value));
		}
		return sb.toString();
	}

	private static void append(StringBuilder sb, String option) {
		if (sb.length() > 0)
			sb.append(' ');
		sb.append(option);
	}

	/** A value as ImageJ's macro options hold it: in [...] with spaces, in '...' when it has a ']'. */
	static String quoted(String value) {
		if (value.indexOf(']') >= 0 && value.indexOf('\'') < 0)
			return "'" + value + "'";
		return value.indexOf(' ') >= 0 || value.indexOf('[') >= 0 ? "[" + value + "]" : value;
	}

	private void schedule(String options) {
		synchronized (lock) {
			pending = options;
			restart = true;
			lock.notifyAll();
			if (previewThread == null) {
				previewThread = new Thread(this::previewLoop, "micro-sam preview");
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
