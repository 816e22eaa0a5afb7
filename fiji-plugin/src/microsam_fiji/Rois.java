package microsam_fiji;

import ij.ImagePlus;
import ij.gui.Overlay;
import ij.gui.Roi;
import ij.io.RoiDecoder;
import ij.io.RoiEncoder;
import ij.measure.ResultsTable;
import ij.plugin.frame.RoiManager;

import java.io.ByteArrayOutputStream;
import java.io.BufferedOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * The worker's RoiSet.zip (written by roifile) decoded with ImageJ's own RoiDecoder, into the ROI Manager; and
 * ImageJ's ROIs encoded with its own RoiEncoder for the worker (a prompt's selection and the ROI Manager).
 */
final class Rois {
	private Rois() {
	}

	static List<Roi> read(File zip) throws IOException {
		List<Roi> rois = new ArrayList<Roi>();
		ZipFile file = new ZipFile(zip);
		try {
			Enumeration<? extends ZipEntry> entries = file.entries();
			while (entries.hasMoreElements()) {
				ZipEntry entry = entries.nextElement();
				if (!entry.getName().endsWith(".roi"))
					continue;
				InputStream in = file.getInputStream(entry);
				ByteArrayOutputStream bytes = new ByteArrayOutputStream();
				byte[] buf = new byte[8192];
				int len;
				while ((len = in.read(buf)) > 0)
					bytes.write(buf, 0, len);
				in.close();
				Roi roi = new RoiDecoder(bytes.toByteArray(), entry.getName()).getRoi();
				if (roi != null)
					rois.add(roi);
			}
		} finally {
			file.close();
		}
		return rois;
	}

	/**
	 * Writes {@code rois} with ImageJ's RoiEncoder: one ROI as a .roi file, several as a RoiSet.zip as the ROI
	 * Manager's "Save" writes it (entries named after the ROIs, made unique). Returns the file's path.
	 */
	static String write(Roi[] rois, File file) throws IOException {
		if (rois.length == 1 && file.getName().endsWith(".roi")) {
			FileOutputStream out = new FileOutputStream(file);
			try {
				out.write(RoiEncoder.saveAsByteArray(rois[0]));
			} finally {
				out.close();
			}
			return file.getAbsolutePath();
		}
		ZipOutputStream zip = new ZipOutputStream(new BufferedOutputStream(new FileOutputStream(file)));
		try {
			Set<String> names = new HashSet<String>();
			for (int i = 0; i < rois.length; i++) {
				String base = rois[i].getName() == null || rois[i].getName().isEmpty()
					? String.format("%04d", i + 1) : rois[i].getName();
				String name = base;
				for (int n = 2; !names.add(name); n++)
					name = base + "-" + n;
				zip.putNextEntry(new ZipEntry(name + ".roi"));
				zip.write(RoiEncoder.saveAsByteArray(rois[i]));
				zip.closeEntry();
			}
		} finally {
			zip.close();
		}
		return file.getAbsolutePath();
	}

	/** The ROI Manager's ROIs, none when it is not open (reading them must not open one). */
	static Roi[] managerRois() {
		RoiManager rm = RoiManager.getInstance();
		return rm == null ? new Roi[0] : rm.getRoisAsArray();
	}

	/** The ROI Manager a macro's roiManager(...) sees: the open one, a batch-mode macro's own, or a new one. */
	static RoiManager target() {
		RoiManager rm = RoiManager.getInstance();
		if (rm != null)
			return rm;
		// headless (no window can open): a hidden manager, as ImageJ's batch mode uses
		return java.awt.GraphicsEnvironment.isHeadless() ? new RoiManager(true) : RoiManager.getRoiManager();
	}

	/**
	 * Adds the ROIs as the worker named them (existing ROIs stay unless {@code replace}; the names continue theirs:
	 * Python's rois/naming.py decided them from the names this ROI Manager sent) and turns on Show All: the user
	 * sees them. The image's selection stays.
	 */
	static void add(RoiManager rm, List<Roi> rois, ImagePlus imp, boolean replace) {
		if (replace)
			rm.reset();
		for (Roi roi : rois)
			rm.add(imp, roi, -1);
		if (imp != null && !rois.isEmpty()) {
			Roi selection = imp.getRoi();
			rm.runCommand(imp, "show all"); // as roiManager("Show All"); ImageJ leaves it off after add
			if (selection != null && imp.getRoi() == null)
				imp.setRoi(selection); // Show All drops the selection: the user's region stays for the next call
		}
	}

	/** Puts {@code roi} in place of the ROI at {@code index} (same place in the list, the new name). */
	static void replace(RoiManager rm, int index, Roi roi, ImagePlus imp) {
		rm.setRoi(roi, index);
		rm.rename(index, roi.getName());
		if (imp != null)
			imp.updateAndDraw();
	}

	/**
	 * The objects' measurements (the worker's CSV) as ImageJ's ResultsTable {@code title}: replaced by an APG
	 * call, appended to by a prompt (its objects join the table). Numbers stay numbers, names and units text.
	 */
	static void showTable(String csv, String title, boolean append) throws IOException {
		ResultsTable fresh = ResultsTable.open(csv);
		ResultsTable shown = append ? ResultsTable.getResultsTable(title) : null;
		if (shown == null) {
			fresh.show(title);
			return;
		}
		for (int row = 0; row < fresh.size(); row++) {
			shown.incrementCounter();
			for (String heading : fresh.getHeadings()) {
				double number = fresh.getValue(heading, row);
				if (Double.isNaN(number)) // a text column (name, unit) or an empty cell
					shown.addValue(heading, fresh.getStringValue(heading, row));
				else
					shown.addValue(heading, number);
			}
		}
		shown.show(title);
	}

	/** Outlines for the dialog's preview: an overlay, so the ROI Manager and the image stay untouched. */
	static Overlay overlay(List<Roi> rois) {
		Overlay overlay = new Overlay();
		for (Roi roi : rois) {
			roi.setStrokeColor(java.awt.Color.yellow);
			overlay.add(roi);
		}
		return overlay;
	}
}
