"""Issue 21.4: inputs that were segmented silently wrong: an RGBA PNG read as a 4-slice stack, a multi-series TIFF
read as its first (thumbnail) series, and parameters that are not finite numbers."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment
from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import read_image


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
