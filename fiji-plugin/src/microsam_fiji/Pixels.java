package microsam_fiji;

import ij.ImagePlus;
import ij.ImageStack;
import ij.measure.Calibration;

import java.io.BufferedOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * An image's pixels as one raw file for the worker, plus a description of them: planes in ImageJ's stack order
 * (channel fastest, then slice, then frame), little-endian; 8-bit as bytes, 16-bit as unsigned shorts, 32-bit as
 * floats, RGB (and 8-bit indexed colour, through its LUT) as three bytes R, G, B per pixel. The Python side
 * ({@code microsam_fiji.worker.raw_image}) turns them into the same array as the in-process bridge's
 * {@code from_imageplus}. A raw file rather than a TIFF: no encoding on either side (see the plugin bench).
 */
final class Pixels {
	private Pixels() {
	}

	static Map<String, Object> write(ImagePlus imp, File file) throws IOException {
		int width = imp.getWidth(), height = imp.getHeight();
		int nc = imp.getNChannels(), nz = imp.getNSlices(), nt = imp.getNFrames();
		ImageStack stack = imp.getStack();
		int n = stack.getSize();
		if (n != nc * nz * nt) { // dimensions not set consistently: treat the stack as slices
			nc = 1;
			nz = n;
			nt = 1;
		}
		int type = imp.getType();
		boolean rgb = type == ImagePlus.COLOR_RGB || type == ImagePlus.COLOR_256;
		String kind = rgb ? "rgb" : type == ImagePlus.GRAY16 ? "uint16" : type == ImagePlus.GRAY32 ? "float32" : "uint8";
		int bytesPerPixel = rgb ? 3 : type == ImagePlus.GRAY16 ? 2 : type == ImagePlus.GRAY32 ? 4 : 1;
		ByteBuffer buffer = ByteBuffer.allocate(width * height * bytesPerPixel).order(ByteOrder.LITTLE_ENDIAN);
		OutputStream out = new BufferedOutputStream(new FileOutputStream(file), 1 << 20);
		try {
			for (int i = 1; i <= n; i++) {
				buffer.clear();
				Object pixels = type == ImagePlus.COLOR_256
					? stack.getProcessor(i).convertToRGB().getPixels() : stack.getPixels(i);
				if (pixels instanceof byte[]) {
					buffer.put((byte[]) pixels);
				} else if (pixels instanceof short[]) {
					buffer.asShortBuffer().put((short[]) pixels);
				} else if (pixels instanceof float[]) {
					buffer.asFloatBuffer().put((float[]) pixels);
				} else if (pixels instanceof int[]) {
					for (int c : (int[]) pixels) {
						buffer.put((byte) (c >> 16)).put((byte) (c >> 8)).put((byte) c);
					}
				} else {
					throw new PluginError("unsupported pixel type in '" + imp.getTitle() + "'");
				}
				out.write(buffer.array(), 0, width * height * bytesPerPixel);
			}
		} finally {
			out.close();
		}
		Calibration cal = imp.getCalibration();
		Map<String, Object> meta = new LinkedHashMap<String, Object>();
		meta.put("path", file.getAbsolutePath());
		meta.put("title", imp.getTitle());
		meta.put("width", width);
		meta.put("height", height);
		meta.put("channels", nc);
		meta.put("slices", nz);
		meta.put("frames", nt);
		meta.put("kind", kind);
		meta.put("hyperstack", imp.isHyperStack());
		meta.put("pixel_width", cal.pixelWidth);
		meta.put("pixel_height", cal.pixelHeight);
		meta.put("pixel_depth", cal.pixelDepth);
		meta.put("unit", cal.getUnit());
		return meta;
	}
}
