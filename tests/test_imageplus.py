"""ImagePlus <-> numpy in a real ImageJ 1.x (headless or with a display, whichever this process started)."""
from __future__ import annotations

import numpy as np
import pytest

from microsam_fiji.core.tiff_io import Calibration


@pytest.fixture(scope="module")
def ij():
    from jpype import JClass

    from microsam_fiji.imagej.jvm import start_imagej

    start_imagej()
    return JClass("ij.IJ")


def random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.floating):
        return rng.normal(size=shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


@pytest.mark.parametrize("dtype, bit_depth", [(np.uint8, 8), (np.uint16, 16), (np.float32, 32)])
def test_grayscale_round_trip_and_imagej_sees_the_same_pixels(ij, dtype, bit_depth):
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    data = random_image((37, 53), dtype)  # not square: catches x/y mix-ups
    imp = to_imageplus(data, title="t")
    assert imp.getBitDepth() == bit_depth and (imp.getWidth(), imp.getHeight()) == (53, 37)
    ip = imp.getProcessor()
    for y, x in [(0, 0), (36, 52), (5, 40), (30, 2)]:
        assert ip.getPixelValue(x, y) == pytest.approx(float(data[y, x]))
    back = from_imageplus(imp)
    assert back.axes == "YX" and back.data.dtype == dtype
    assert np.array_equal(back.data, data)


def test_rgb_round_trip(ij):
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    data = random_image((20, 30, 3), np.uint8)
    imp = to_imageplus(data)
    assert imp.getBitDepth() == 24
    assert _rgb(imp, 7, 11) == tuple(int(v) for v in data[11, 7])
    back = from_imageplus(imp)
    assert back.axes == "YXS" and np.array_equal(back.data, data)


def _rgb(imp, x, y):
    c = int(imp.getProcessor().getPixel(x, y))
    return (c >> 16) & 0xFF, (c >> 8) & 0xFF, c & 0xFF


def test_hyperstack_axes_and_calibration(ij):
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    data = random_image((3, 4, 16, 24), np.uint16)  # T, Z, Y, X
    cal = Calibration(pixel_width=0.5, pixel_height=0.25, pixel_depth=2.0, unit="µm")
    imp = to_imageplus(data, "TZYX", cal)
    assert (imp.getNChannels(), imp.getNSlices(), imp.getNFrames()) == (1, 4, 3) and imp.isHyperStack()
    # ImageJ's own indexing: frame 2 (1-based), slice 3 -> data[1, 2]
    plane = imp.getStack().getProcessor(imp.getStackIndex(1, 3, 2))
    assert plane.getPixelValue(5, 9) == data[1, 2, 9, 5]
    back = from_imageplus(imp)
    assert back.axes == "TZYX" and np.array_equal(back.data, data)
    assert back.calibration == cal


def test_channels_and_simple_stacks(ij):
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    data = random_image((2, 5, 10, 12), np.float32)  # C, Z, Y, X
    imp = to_imageplus(data, "CZYX")
    assert (imp.getNChannels(), imp.getNSlices(), imp.getNFrames()) == (2, 5, 1)
    back = from_imageplus(imp)
    assert back.axes == "ZCYX" and np.array_equal(back.data, np.moveaxis(data, 0, 1))

    frames = to_imageplus(random_image((4, 8, 8), np.uint8), "TYX")
    assert frames.getNFrames() == 4 and not frames.isHyperStack()
    assert from_imageplus(frames).axes == "TYX"


def test_image_opened_by_imagej_matches_tifffile(ij, tmp_path, small_image):
    import tifffile

    from microsam_fiji.imagej.imageplus import from_imageplus

    stack = np.stack([small_image, small_image // 2, small_image // 3])
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(2.0, 2.0), metadata={"axes": "ZYX", "unit": "um",
                                                                                "spacing": 3.0})
    loaded = from_imageplus(ij.openImage(str(path)))
    assert loaded.axes == "ZYX" and loaded.data.dtype == np.uint16
    assert np.array_equal(loaded.data, stack)
    assert loaded.calibration.pixel_width == pytest.approx(0.5) and loaded.calibration.pixel_depth == 3.0


def test_indexed_color_becomes_rgb(ij):
    from jpype import JClass, JInt

    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    imp = to_imageplus(random_image((8, 10, 3), np.uint8))
    JClass("ij.process.ImageConverter")(imp).convertRGBtoIndexedColor(16)
    assert imp.getType() == JClass("ij.ImagePlus").COLOR_256
    loaded = from_imageplus(imp)
    assert loaded.axes == "YXS" and loaded.data.shape == (8, 10, 3)
    ip, cm = imp.getProcessor(), imp.getProcessor().getColorModel()
    for y, x in [(0, 0), (3, 5), (7, 9)]:
        index = JInt(int(ip.get(x, y)))
        assert tuple(loaded.data[y, x]) == (cm.getRed(index), cm.getGreen(index), cm.getBlue(index))


def test_bad_input_is_one_clear_error(ij):
    from microsam_fiji.core.errors import UserError
    from microsam_fiji.imagej.imageplus import from_imageplus, to_imageplus

    with pytest.raises(UserError, match="axes 'ZYX' do not fit"):
        to_imageplus(np.zeros((4, 4)), "ZYX")
    with pytest.raises(UserError, match="RGB image needs 3 uint8 samples"):
        to_imageplus(np.zeros((4, 4, 3), np.float32), "YXS")
    with pytest.raises(UserError, match="no image"):
        from_imageplus(None)
