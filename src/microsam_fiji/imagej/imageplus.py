"""ImageJ ``ImagePlus`` <-> numpy, with ImageJ axes letters and calibration.

Pixels cross the JVM boundary one plane at a time as whole primitive arrays (``ip.getPixels()`` read through
JPype's buffer protocol, numpy arrays copied into new Java arrays): never one Java call per pixel.

ImageJ stores a stack as planes in channel, slice, frame order (czt); :func:`from_imageplus` returns them as a
numpy array with axes ``T Z C Y X`` (singleton axes dropped) plus ``S`` for RGB samples, ready for
:func:`microsam_fiji.core.images.to_planes`. ImageJ 16-bit is unsigned and Java's ``short`` is signed: the bytes
are reinterpreted, not converted."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import Calibration, LoadedImage
from microsam_fiji.imagej.jvm import jclass as _jclass
from microsam_fiji.worker.raw_image import assemble


def _plane_to_numpy(pixels, height: int, width: int) -> np.ndarray:
    """One ``ip.getPixels()`` array as a numpy plane (RGB int[] unpacked to (Y, X, 3) uint8)."""
    arr = np.array(pixels, copy=True)  # JPype primitive arrays expose the buffer protocol: one bulk copy
    if arr.dtype == np.int8:
        arr = arr.view(np.uint8)
    elif arr.dtype == np.int16:
        arr = arr.view(np.uint16)
    elif arr.dtype == np.int32:  # ColorProcessor: 0xAARRGGBB
        packed = arr.view(np.uint32)
        arr = np.stack([(packed >> 16) & 0xFF, (packed >> 8) & 0xFF, packed & 0xFF], axis=-1).astype(np.uint8)
        return arr.reshape(height, width, 3)
    return arr.reshape(height, width)


def _calibration_of(imp) -> Calibration:
    cal = imp.getCalibration()
    unit = str(cal.getUnit())
    depth = float(cal.pixelDepth) if imp.getNSlices() > 1 else None
    return Calibration(pixel_width=float(cal.pixelWidth), pixel_height=float(cal.pixelHeight), pixel_depth=depth,
                       unit="pixel" if unit in ("pixel", "pixels", "") else unit)


def from_imageplus(imp) -> LoadedImage:
    """Pixels (a copy), ImageJ axes letters and calibration of an ``ij.ImagePlus``.

    8-bit indexed colour (``COLOR_256``) is converted to RGB through its LUT, as ImageJ shows it."""
    if imp is None:
        raise UserError("no image: open or select an image first")
    ImagePlus = _jclass("ij.ImagePlus")
    width, height = int(imp.getWidth()), int(imp.getHeight())
    n_c, n_z, n_t = int(imp.getNChannels()), int(imp.getNSlices()), int(imp.getNFrames())
    stack = imp.getStack()
    n = int(stack.getSize())
    if n != n_c * n_z * n_t:  # dimensions not set consistently: treat the stack as slices
        n_c, n_z, n_t = 1, n, 1
    indexed = int(imp.getType()) == int(ImagePlus.COLOR_256)
    planes = []
    for i in range(1, n + 1):
        if indexed:
            pixels = stack.getProcessor(i).convertToRGB().getPixels()
        else:
            pixels = stack.getPixels(i)
        planes.append(_plane_to_numpy(pixels, height, width))
    data, axes = assemble(np.stack(planes), n_c, n_z, n_t, rgb=planes[0].ndim == 3)
    return LoadedImage(data=data, axes=axes, calibration=_calibration_of(imp))


def _as_imagej_pixels(data: np.ndarray) -> np.ndarray:
    """The closest ImageJ pixel type: uint8, uint16 or float32 (RGB stays uint8 with an S axis)."""
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype in (np.uint8, np.uint16, np.float32):
        return data
    if np.issubdtype(data.dtype, np.integer) and data.size and data.min() >= 0 and data.max() <= 65535:
        return data.astype(np.uint16)
    if np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating):
        return data.astype(np.float32)
    raise UserError(f"unsupported pixel type {data.dtype}: use 8-, 16- or 32-bit grayscale or RGB")


def _processor(plane: np.ndarray):
    from jpype import JArray, JByte, JFloat, JInt, JShort

    height, width = plane.shape[:2]
    flat = np.ascontiguousarray(plane).reshape(-1, *plane.shape[2:])
    if plane.ndim == 3:  # RGB -> packed int
        rgb = flat[:, :3].astype(np.uint32)
        packed = (np.uint32(0xFF) << 24) | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
        return _jclass("ij.process.ColorProcessor")(width, height, JArray(JInt)(packed.view(np.int32)))
    if flat.dtype == np.uint8:
        return _jclass("ij.process.ByteProcessor")(width, height, JArray(JByte)(flat.view(np.int8)))
    if flat.dtype == np.uint16:
        return _jclass("ij.process.ShortProcessor")(width, height, JArray(JShort)(flat.view(np.int16)), None)
    return _jclass("ij.process.FloatProcessor")(width, height, JArray(JFloat)(flat))


def to_imageplus(data, axes: str | None = None, calibration: Calibration | None = None, title: str = "image"):
    """A new ``ij.ImagePlus`` holding a copy of ``data`` (axes: ImageJ letters, guessed as for segmentation).

    Types map to 8-bit (uint8/bool), 16-bit (uint16, non-negative integers up to 65,535), RGB (an ``S`` axis of
    3 uint8 samples) or 32-bit float (everything else)."""
    from microsam_fiji.core.images import guess_axes

    arr = np.asarray(data)
    axes = (axes or guess_axes(arr.shape)).upper()
    if len(axes) != arr.ndim or len(set(axes)) != len(axes) or set(axes) - set("XYZTCS"):
        raise UserError(f"axes '{axes}' do not fit an image of shape {arr.shape}: use one letter of XYZTCS per axis")
    for letter in "TZC":
        if letter not in axes:
            arr = arr[np.newaxis]
            axes = letter + axes
    rgb = "S" in axes
    if rgb and (arr.shape[axes.index("S")] not in (3, 4) or arr.dtype != np.uint8):
        raise UserError("an RGB image needs 3 uint8 samples per pixel (axis S)")
    order = "TZCYX" + ("S" if rgb else "")
    arr = _as_imagej_pixels(np.transpose(arr, [axes.index(a) for a in order]))
    n_t, n_z, n_c, height, width = arr.shape[:5]
    stack = _jclass("ij.ImageStack")(int(width), int(height))
    for plane in arr.reshape((-1,) + arr.shape[3:]):
        stack.addSlice("", _processor(plane))
    imp = _jclass("ij.ImagePlus")(title, stack)
    imp.setDimensions(int(n_c), int(n_z), int(n_t))
    if sum(size > 1 for size in (n_c, n_z, n_t)) > 1:
        imp.setOpenAsHyperStack(True)
    if calibration is not None:
        cal = imp.getCalibration()
        cal.pixelWidth = float(calibration.pixel_width)
        cal.pixelHeight = float(calibration.pixel_height)
        if calibration.pixel_depth is not None:
            cal.pixelDepth = float(calibration.pixel_depth)
        cal.setUnit(calibration.unit)
    return imp
