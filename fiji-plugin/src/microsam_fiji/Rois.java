package microsam_fiji;

import ij.ImagePlus;
import ij.gui.Overlay;
import ij.gui.Roi;
import ij.io.RoiDecoder;
import ij.plugin.frame.RoiManager;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Enumeration;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;

/** The worker's RoiSet.zip (written by roifile) decoded with ImageJ's own RoiDecoder, into the ROI Manager. */
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

	/** The ROI Manager a macro's roiManager(...) sees: the open one, a batch-mode macro's own, or a new one. */
	static RoiManager target() {
		RoiManager rm = RoiManager.getInstance();
		if (rm != null)
			return rm;
		// headless (no window can open): a hidden manager, as ImageJ's batch mode uses
		return java.awt.GraphicsEnvironment.isHeadless() ? new RoiManager(true) : RoiManager.getRoiManager();
	}

	/** Adds the ROIs; existing ROIs stay unless {@code replace}. */
	static void add(RoiManager rm, List<Roi> rois, ImagePlus imp, boolean replace) {
		if (replace)
			rm.reset();
		for (Roi roi : rois)
			rm.add(imp, roi, -1);
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
