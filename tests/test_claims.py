"""README's claims that no other test shows, one test each: the engine default and its switch, the exporter's
report of what it leaves out, ``--test-image``, an RGB image through an exported package (Python and a macro's
``model=[package.zip]``), ``mask_threshold=auto`` end to end; and the parity helper refusing to compare nothing.

One package is exported for the whole session (the slow step, ~1.5 min of CPU): the demo checkpoint with an RGB
``--test-image``, ONNX asked for where it cannot be made, so pytorch_state_dict only."""
from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

import microsam_fiji
from microsam_fiji.core.errors import UserError
from microsam_fiji.models.demo import DEMO_CHECKPOINT

from helpers.bridge import macro, open_image, rois_as_labels, write_tiff
from helpers.instance_match import assert_same_instances


def test_two_empty_label_images_are_not_the_same_instances():
    empty = np.zeros((32, 32), np.uint32)
    with pytest.raises(AssertionError, match="no objects"):
        assert_same_instances(empty, empty)
    one = empty.copy()
    one[4:9, 4:9] = 1
    assert_same_instances(one, one)  # one object on each side, identical: the same instances


# --- engines ---------------------------------------------------------------------------------------------------

@pytest.fixture
def engine_calls(monkeypatch):
    """The engines that segment_plane dispatched to, in order (the real engines run)."""
    from microsam_fiji.engines import registry
    calls = []
    for name, impl in list(registry.ENGINE_IMPLS.items()):
        def recorded(*args, _name=name, _impl=impl, **kwargs):
            calls.append(_name)
            return _impl(*args, **kwargs)
        monkeypatch.setitem(registry.ENGINE_IMPLS, name, recorded)
    return calls


def test_fast_is_the_default_engine_and_the_environment_switches_it(demo_model, small_image, engine_calls,
                                                                      monkeypatch):
    crop = small_image[:96, :96].copy()
    monkeypatch.delenv("MICROSAM_FIJI_ENGINE", raising=False)
    default = microsam_fiji.segment_with_scores(crop, demo_model)
    monkeypatch.setenv("MICROSAM_FIJI_ENGINE", "micro-sam")
    switched = microsam_fiji.segment_with_scores(crop, demo_model)
    explicit = microsam_fiji.segment_with_scores(crop, demo_model, engine="fast")  # engine= wins over the environment
    assert engine_calls == ["fast", "micro-sam", "fast"]
    assert default.labels.max() > 0 and default.scores and switched.scores == {}  # micro-sam reports no scores
    np.testing.assert_array_equal(default.labels, explicit.labels)
    monkeypatch.setenv("MICROSAM_FIJI_ENGINE", "quick")
    with pytest.raises(UserError, match="unknown engine 'quick'"):
        microsam_fiji.segment_with_scores(crop, demo_model)


# --- one exported package ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def rgb_image(stardist_image) -> np.ndarray:
    """128x128 RGB of real nuclei (blue strongest, as a DAPI overlay), uint8."""
    crop = stardist_image[384:512, 0:128].astype(np.float32)
    crop = (crop - crop.min()) / (crop.max() - crop.min()) * 255
    return np.stack([crop * 0.2, crop * 0.6, crop], axis=-1).astype(np.uint8)


# `microsam-fiji export` where ONNX cannot be made: onnxscript (what torch's ONNX exporter needs) not installed
EXPORT_WITHOUT_ONNXSCRIPT = """
import sys
sys.modules["onnxscript"] = None  # as if the package were not installed: importing it fails
from microsam_fiji.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="session")
def exported(tmp_path_factory, rgb_image):
    """(package path, what `microsam-fiji export` printed, the RGB test image's path): the demo checkpoint with
    an RGB --test-image, asked for ONNX weights on a machine that cannot make them."""
    folder = tmp_path_factory.mktemp("claims-package")
    test_image = folder / "typical rgb.tif"
    tifffile.imwrite(test_image, rgb_image, photometric="rgb")
    out = folder / "claims.zip"
    done = subprocess.run([sys.executable, "-c", EXPORT_WITHOUT_ONNXSCRIPT, "export", "--checkpoint",
                           str(DEMO_CHECKPOINT), "--name", "claims test", "--out", str(out), "--test-image",
                           str(test_image), "--weight-format", "onnx"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done.stdout, test_image


@pytest.fixture(scope="session")
def package_model(exported):
    return microsam_fiji.load_model(exported[0], device="cpu")


def _rdf(path: Path) -> dict:
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def _member(path: Path, file_descr: dict) -> bytes:
    """The bytes of a file the rdf names (spec 0.5: ``{"source": name, ...}``)."""
    with zipfile.ZipFile(path) as z:
        return z.read(file_descr["source"])


def test_exporter_names_the_format_it_leaves_out(exported):
    path, printed, _ = exported
    assert re.search(r"^  onnx left out: conversion failed: ModuleNotFoundError: .*onnxscript", printed,
                     re.MULTILINE), printed
    assert "weights pytorch_state_dict;" in printed
    rdf = _rdf(path)
    assert set(rdf["weights"]) == {"pytorch_state_dict"}
    doc = _member(path, rdf["documentation"]).decode()
    assert re.search(r"Weight formats left out:\s*\n.*onnx.*onnxscript", doc), doc


def test_test_image_option_becomes_the_packages_test_input(exported, rgb_image):
    path, _, test_image = exported
    rdf = _rdf(path)
    test_input = np.load(io.BytesIO(_member(path, rdf["inputs"][0]["test_tensor"])))
    doc = _member(path, rdf["documentation"]).decode()
    # batch, channel, y, x: the RGB image's own pixels
    np.testing.assert_array_equal(test_input[0], np.moveaxis(rgb_image, -1, 0).astype(test_input.dtype))
    assert test_image.name in doc and "128x128" in doc


def test_rgb_image_through_the_exported_package_equals_the_checkpoint(package_model, demo_model, rgb_image):
    from_package = microsam_fiji.segment_with_scores(rgb_image, package_model)
    from_checkpoint = microsam_fiji.segment_with_scores(rgb_image, demo_model)
    assert from_package.labels.max() >= 3
    np.testing.assert_array_equal(from_package.labels, from_checkpoint.labels)


def test_macro_with_model_package_puts_the_packages_rois(bridge, rm, exported, rgb_image, tmp_path):
    path, _, _ = exported
    image = write_tiff(tmp_path / "rgb nuclei.tif", rgb_image)
    count = macro(open_image(image) + f'run("micro-sam APG", "model=[{path}]"); return "" + roiManager("count");')
    expected = microsam_fiji.segment_with_scores(rgb_image, bridge.models.model(str(path))).labels
    assert int(count) == int(expected.max()) >= 3
    np.testing.assert_array_equal(rois_as_labels(rm.getRoisAsArray(), rgb_image.shape[:2]), expected)


# --- mask_threshold=auto ------------------------------------------------------------------------------------------

def test_mask_threshold_auto_end_to_end_gives_micro_sams_instances(demo_model, stardist_image, tmp_path):
    """micro-sam's local Otsu threshold per mask, through the command line, against micro-sam's own engine; an
    image with few prompts (6: "auto" costs ~1 s per prompt, micro-sam's own ~250 MB per prompt)."""
    from microsam_fiji.cli import main

    from helpers.bridge import nuclei_crop

    crop = nuclei_crop(stardist_image)
    image = tmp_path / "crop.tif"
    tifffile.imwrite(image, crop)
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--param", "mask_threshold=auto",
                 "--no-rois"]) == 0
    ours = tifffile.imread(tmp_path / "out" / "crop_labels.tif")
    reference = microsam_fiji.segment(crop, demo_model, engine="micro-sam", mask_threshold="auto")
    default = microsam_fiji.segment(crop, demo_model, engine="micro-sam")
    assert 3 <= reference.max() <= 10
    assert_same_instances(reference, ours)
    assert not np.array_equal(reference, default)  # "auto" changed the masks: the threshold really was used
