"""Input handling for what ImageJ users have: pixel types, RGB, stacks, bad shapes."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import tifffile
import xarray as xr

from microsam_fiji import segment
from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import ChannelWarning, ImageRescaledWarning, guess_axes, to_planes
from microsam_fiji.core.tiff_io import read_image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_2d_pixel_types_give_one_plane(dtype):
    planes = to_planes(np.ones((5, 7), dtype=dtype))
    assert planes.data.shape == (1, 5, 7)
    assert planes.label_shape == (5, 7)


def test_rgb_keeps_samples_and_drops_alpha():
    rgba = np.random.default_rng(0).integers(0, 255, (6, 8, 4), dtype=np.uint8)
    planes = to_planes(rgba, axes="YXS")
    assert planes.data.shape == (1, 6, 8, 3)
    np.testing.assert_array_equal(planes.data[0], rgba[..., :3])
    assert to_planes(rgba[..., :3]).label_shape == (6, 8)  # a trailing 3 is RGB without axes


def test_zt_stack_is_flattened_in_imagej_order():
    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # T, Z, Y, X
    planes = to_planes(stack, axes="TZYX")
    assert planes.stack_shape == (2, 3) and planes.data.shape == (6, 4, 5)
    np.testing.assert_array_equal(planes.data[4], stack[1, 1])
    # axes in another order are transposed to stack-then-YX
    planes = to_planes(np.moveaxis(stack, 0, -1), axes="ZYXT")
    assert planes.stack_shape == (3, 2)
    np.testing.assert_array_equal(planes.data[1], stack[1, 0])


def test_single_channel_axis_is_dropped():
    assert to_planes(np.zeros((1, 4, 4)), axes="CYX").label_shape == (4, 4)


@pytest.mark.parametrize("shape,axes,message", [
    ((2, 3, 8, 8), None, "cannot tell the axes of a 4D image"),
    ((0, 8), None, "the image is empty"),
    ((8, 8), "ZYX", "do not fit an image of shape"),
    ((8, 8, 2), "YXS", "RGB axis S must have 3 samples"),
    ((70000, 1), None, "the image is 1 x 70000 pixels, a line rather than a 2D image"),
    ((1, 1), None, "the image is 1 x 1 pixels"),
    ((3, 1, 9), "ZYX", "the image is 9 x 1 pixels"),
])
def test_bad_shapes_get_one_line_errors(shape, axes, message):
    with pytest.raises(UserError, match=message) as err:
        to_planes(np.zeros(shape, dtype=np.float32), axes=axes)
    assert "\n" not in str(err.value)


def test_nan_and_inf_are_refused_with_the_imagej_fix():
    img = np.zeros((8, 8), np.float32)
    img[2, 3] = np.nan
    with pytest.raises(UserError, match="Remove NaNs"):
        to_planes(img)
    img[2, 3] = np.inf
    with pytest.raises(UserError, match="NaN or infinite"):
        to_planes(img)


def test_complex_pixels_are_refused():
    with pytest.raises(UserError, match="unsupported pixel type"):
        to_planes(np.zeros((4, 4), dtype=np.complex64))


def test_guess_axes():
    assert guess_axes((5, 6)) == "YX"
    assert guess_axes((5, 6, 3)) == "YXS"
    assert guess_axes((4, 5, 6)) == "ZYX"
    assert guess_axes((4, 5, 6, 3)) == "ZYXS"


# micro-sam scales each plane min..max to 0..255 in float32 (micro_sam.util._to_image); issue 13.3

def _nuclei(stardist_image):
    return stardist_image[384:512, 0:128].astype(np.float64)


def _micro_sam_view(plane):
    from micro_sam.util import _to_image

    return _to_image(plane)


@pytest.mark.parametrize("name,make,reason", [
    ("±3e38", lambda x: (x - x.min()) / np.ptp(x) * 6e38 - 3e38, "overflow micro-sam's 32-bit scaling"),
    ("±1.5e308", lambda x: ((x - x.min()) / np.ptp(x) - 0.5) * 1.5e308 * 2, "overflow micro-sam's 32-bit scaling"),
    ("×1e-30", lambda x: x * 1e-30, "below the 1e-07 that micro-sam's scaling adds"),
    ("int64 near 2**62", lambda x: x.astype(np.int64) + 2 ** 62, "differ by less than 32-bit floats resolve"),
    ("uint32 near 4e9", lambda x: x.astype(np.uint32) + 4_000_000_000, "differ by less than 32-bit floats resolve"),
])
def test_values_micro_sams_scaling_cannot_hold_are_rescaled_and_reported(stardist_image, name, make, reason):
    nuclei = _nuclei(stardist_image)
    image = make(nuclei)
    with np.errstate(all="raise"):  # micro-sam's own scaling of these warns (overflow, invalid cast) or is blank
        try:
            broken = _micro_sam_view(image)
        except FloatingPointError:
            broken = None
    expected = _micro_sam_view(nuclei)
    assert broken is None or not np.array_equal(broken, expected)  # the defect this fixes
    with pytest.warns(ImageRescaledWarning, match=reason) as record:
        planes = to_planes(image)
    assert len(record) == 1 and "rescaled the image linearly to 0..255" in str(record[0].message)
    assert "\n" not in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(_micro_sam_view(planes.data[0]), expected)  # what the plain image gives


def test_rescale_can_be_made_a_refusal(stardist_image):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ImageRescaledWarning)
        with pytest.raises(ImageRescaledWarning):
            to_planes(_nuclei(stardist_image) * 1e-30)


def test_rescale_keeps_every_plane_and_channel_of_a_stack(stardist_image):
    nuclei = _nuclei(stardist_image)
    stack = np.stack([nuclei, nuclei * 1e-30, np.full_like(nuclei, 7.0)])  # plain, tiny, constant
    with pytest.warns(ImageRescaledWarning, match="^plane 2 of 3: values span only"):
        planes = to_planes(stack)
    assert np.array_equal(_micro_sam_view(planes.data[0]), _micro_sam_view(nuclei))
    assert np.array_equal(_micro_sam_view(planes.data[1]), _micro_sam_view(nuclei))
    assert planes.data[2].min() == planes.data[2].max()  # still constant: no model run, empty labels
    rgb = np.stack([nuclei, nuclei * 1e-30, nuclei[::-1]], axis=-1)
    with pytest.warns(ImageRescaledWarning, match="^G channel: values span only"):
        planes = to_planes(rgb)
    plain = np.stack([nuclei, nuclei, nuclei[::-1]], axis=-1)
    assert np.array_equal(_micro_sam_view(planes.data[0]), _micro_sam_view(plain))


@pytest.mark.parametrize("dtype,outlier,shown", [(np.float64, -3e38, "-3e+38"), (np.float32, 3e38, "3e+38"),
                                                 (np.uint16, 65535, "65535")])
def test_a_few_extreme_pixels_that_flatten_the_rest_are_refused(stardist_image, dtype, outlier, shown):
    image = _nuclei(stardist_image).astype(dtype)
    image[3, 5] = outlier  # a "no data" marker or a hot pixel
    message = re.escape(f"1 pixel ({shown}) lies so far from the others (2 to 235)")
    with pytest.raises(UserError, match=message) as err:
        to_planes(image)
    assert "Remove Outliers" in str(err.value) and "\n" not in str(err.value)
    image[3, 6:30] = outlier  # 25 pixels could be an object: segmented as given
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_planes(image)


def test_extreme_pixels_on_a_flat_background_are_kept(stardist_image):
    """One bright spot on an exactly flat background is a (small) image, not an outlier."""
    image = np.zeros((64, 64), np.uint16)
    image[10, 10] = 65535
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert to_planes(image).data.dtype == np.uint16


def test_ordinary_images_pass_unchanged(stardist_image):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for image in (stardist_image, stardist_image.astype(np.float32) / 1000, stardist_image.astype(np.int64) - 100):
            assert to_planes(image).data[0] is not None
            np.testing.assert_array_equal(to_planes(image).data[0], image)


def test_the_fewest_object_pixels_are_apgs_default_min_size():
    from microsam_fiji.core.images import _FEWEST_OBJECT_PIXELS
    from microsam_fiji.core.params import default_params

    assert default_params("apg")["min_size"] == _FEWEST_OBJECT_PIXELS


def test_a_tiny_image_is_no_bulk_with_outliers():
    rgb = np.random.default_rng(0).random((3, 3, 3))  # 9 pixels: no level holds "all but a few"
    assert to_planes(rgb).data.shape == (1, 3, 3, 3)


# --- arrays from other libraries -------------------------------------------------------------------------------------
# Arrays from other libraries keep their meaning: an xarray's dims name its axes (also pyimagej's names), a torch
# tensor that requires grad is segmented as its values, a parameter tiled APG ignores is named.

def test_xarray_dims_name_the_axes(small_image):
    two_channels = xr.DataArray(np.stack([small_image, small_image + 1]), dims=("c", "y", "x"))
    with pytest.warns(ChannelWarning, match="the image has 2 channels"):  # not two z-slices, as the shape alone says
        planes = to_planes(two_channels)
    assert planes.label_shape == small_image.shape and planes.channel == 1
    one_channel = xr.DataArray(small_image[:, :, None], dims=("y", "x", "c"))
    planes = to_planes(one_channel)
    assert planes.data.shape[0] == 1 and planes.label_shape == small_image.shape
    # pyimagej's ij.py.from_java names: pln (z), row (y), col (x)
    stack = xr.DataArray(np.stack([small_image.T, small_image.T]).transpose(0, 2, 1), dims=("pln", "row", "col"))
    assert to_planes(stack).label_shape == (2,) + small_image.shape
    # dims win over the shape's guess: (y, x, z) with 3 planes is no RGB image
    assert to_planes(xr.DataArray(np.stack([small_image] * 3, -1), dims=("y", "x", "z"))).label_shape == \
        (3,) + small_image.shape
    with pytest.raises(UserError, match=r"dims \('b', 'y', 'x'\).*x, y, z, t, c"):
        to_planes(xr.DataArray(small_image[None], dims=("b", "y", "x")))


def test_a_tensor_that_requires_grad_is_segmented(demo_model, small_image):
    import torch

    from microsam_fiji import segment

    crop = small_image[:96, :96].astype(np.float32)
    tensor = torch.tensor(crop, requires_grad=True)
    assert np.array_equal(segment(tensor, demo_model), segment(crop, demo_model))


def test_mask_threshold_on_a_tiled_image_says_it_is_not_used(demo_model, small_image):
    """Said before the passes (a user sees it at once): the call is stopped (Esc) at its first progress report."""
    from microsam_fiji.core.progress import Cancelled, reporting
    from microsam_fiji.engines.segment import TilingWarning, segment_with_scores

    def esc(*_):
        raise Cancelled()

    image = small_image[::-1].copy()  # pixels no other test encodes: the first report is the encoder's
    with pytest.warns(TilingWarning, match="mask_threshold=0.3 is not used on a tiled image"):
        with pytest.raises(Cancelled), reporting(esc):
            segment_with_scores(image, demo_model, tile_shape=(128, 256), halo=(0, 0), mask_threshold=0.3)


# --- inputs that were read wrongly before ----------------------------------------------------------------------------
# Inputs that were segmented silently wrong: an RGBA PNG read as a 4-slice stack, a multi-series TIFF
# read as its first (thumbnail) series, and parameters that are not finite numbers.

def test_an_rgba_png_is_segmented_as_rgb_with_a_warning(tmp_path, demo_model, stardist_image):
    from skimage.io import imsave

    crop = stardist_image[:64, :64]
    gray = ((crop - crop.min()) / np.ptp(crop) * 255).astype(np.uint8)
    rgb = np.stack([gray, gray // 2, 255 - gray], axis=-1)
    rgba = np.concatenate([rgb, np.full((64, 64, 1), 200, np.uint8)], axis=-1)
    imsave(tmp_path / "cells.png", rgba, check_contrast=False)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_image(tmp_path / "cells.png")
    assert loaded.data.shape == (64, 64, 3) and loaded.axes == "YXS"
    np.testing.assert_array_equal(loaded.data, rgb)
    messages = [str(w.message) for w in caught]
    assert any("cells.png" in m and "alpha" in m for m in messages), messages

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = segment_many(tmp_path / "cells.png", tmp_path / "out", demo_model, rois=False)
    assert summary.rows[0].status == "done", summary.rows[0].error
    labels = tifffile.imread(tmp_path / "out" / "cells_labels.tif")
    assert labels.shape == (64, 64)
    np.testing.assert_array_equal(labels, segment(rgb, demo_model))


def test_a_gray_alpha_png_is_gray(tmp_path):
    from PIL import Image

    gray = np.arange(32 * 40, dtype=np.uint32).reshape(32, 40) % 251
    two = np.stack([gray.astype(np.uint8), np.full((32, 40), 255, np.uint8)], axis=-1)
    Image.fromarray(two, mode="LA").save(tmp_path / "la.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_image(tmp_path / "la.png")
    assert loaded.data.shape == (32, 40) and loaded.axes == "YX"
    np.testing.assert_array_equal(loaded.data, gray.astype(np.uint8))
    assert any("alpha" in str(w.message) for w in caught)


def test_a_multi_series_tiff_gives_its_largest_series_with_a_warning(tmp_path, demo_model):
    path = tmp_path / "slide.tif"
    thumbnail = np.full((16, 16), 9, np.uint8)
    image = np.zeros((64, 80), np.uint16)
    image[:, 40:] = 7  # two halves: not constant, but cheap to read back
    tifffile.imwrite(path, thumbnail, resolution=(2.0, 2.0))
    tifffile.imwrite(path, image, append=True, resolution=(1 / 0.25, 1 / 0.25))
    with tifffile.TiffFile(path) as tif:
        assert [s.shape for s in tif.series] == [(16, 16), (64, 80)]  # the file is what the issue describes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = read_image(path)
    np.testing.assert_array_equal(loaded.data, image)
    assert loaded.calibration.pixel_width == pytest.approx(0.25)  # the calibration of that series
    messages = [str(w.message) for w in caught]
    assert any("slide.tif" in m and "2 image series" in m and "(64, 80)" in m for m in messages), messages

    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.full((8, 8), 1, np.uint8))
    tifffile.imwrite(flat, np.full((50, 60), 3, np.uint8), append=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = segment_many(flat, tmp_path / "out", demo_model, rois=False)
    assert summary.rows[0].status == "done"
    assert tifffile.imread(tmp_path / "out" / "flat_labels.tif").shape == (50, 60)


BAD_PARAMS = ["mask_threshold=nan", "min_size=inf", "min_size=nan", "min_size=-inf", "batch_size=inf",
              "center=None", "center=[0.3]", "center=nan", "nms=inf", "foreground_smoothing=inf"]


@pytest.mark.parametrize("param", BAD_PARAMS)
def test_parameters_that_are_not_finite_numbers_are_refused_on_the_cli(param, tmp_path, capsys):
    image = tmp_path / "flat.tif"
    tifffile.imwrite(image, np.full((32, 32), 5, np.uint8))
    code = main(["segment", str(image), "--out", str(tmp_path / "out"), "--param", param])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    name = param.split("=")[0]
    assert name in lines[0] and "Traceback" not in lines[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("name,value", [
    ("min_size", float("inf")), ("min_size", float("nan")), ("min_size", np.float32("inf")),
    ("mask_threshold", float("nan")), ("mask_threshold", float("inf")), ("mask_threshold", [0.5]),
    ("batch_size", float("inf")), ("batch_size", 2.5), ("center", None), ("center", [0.3]),
    ("center", "0.3x"), ("center", True), ("min_size", {"a": 1}), ("multimasking", 0.5),
])
def test_parameters_that_are_not_finite_numbers_are_refused_by_the_python_api(name, value, demo_model):
    image = np.full((32, 32), 5, np.uint8)  # constant: no model run once the parameters are accepted
    with pytest.raises(UserError) as err:
        segment(image, demo_model, **{name: value})
    message = str(err.value)
    assert "\n" not in message and name in message


@pytest.mark.parametrize("name,value", [("min_size", 30.0), ("min_size", np.int64(12)), ("center", 0.3),
                                        ("center", np.float32(0.25)), ("mask_threshold", "auto"),
                                        ("mask_threshold", None), ("mask_threshold", 0.5), ("multimasking", True),
                                        ("batch_size", 8)])
def test_finite_parameters_are_still_accepted(name, value, demo_model):
    from microsam_fiji.core.params import resolve_params

    resolved = resolve_params("apg", {name: value})
    canonical = {"center": "center_distance_threshold"}.get(name, name)
    assert resolved[canonical] == value or (value is None and resolved[canonical] is None)
    assert segment(np.full((32, 32), 5, np.uint8), demo_model, **{name: value}).shape == (32, 32)
