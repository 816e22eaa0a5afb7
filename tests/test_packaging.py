"""Model Zoo packages: export of the demo checkpoint (once per session), bioimageio.core's test_model (ONNX),
round trips of APG/AIS through the package, the tensor path without microsam_fiji, refusals."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.params import default_params
from microsam_fiji.engines.segment import segment_with_scores
from microsam_fiji.models.demo import DEMO_CHECKPOINT
from microsam_fiji.models.load import load_model
from microsam_fiji.models.package import load_package
from microsam_fiji.models.package_config import SAM_ATTACHMENT, WEIGHTS_FILE
from microsam_fiji.zoo.export import export_package
from microsam_fiji.zoo.reproduction import TOLERANCE

from helpers.zips import rewrite_zip


def _rdf(path: Path) -> dict:
    import yaml

    with zipfile.ZipFile(path) as z:
        return yaml.safe_load(z.read("rdf.yaml"))


def test_export_writes_all_weight_formats_and_micro_sam_metadata(demo_export, package_zip):
    import re

    printed = demo_export[1]
    assert "weights pytorch_state_dict, torchscript, onnx;" in printed and "left out" not in printed, printed
    diffs = dict(re.findall(r"(pytorch_state_dict|torchscript|onnx) ([0-9.e+-]+)", printed.split("micro-sam")[-1]))
    assert set(diffs) == {"pytorch_state_dict", "torchscript", "onnx"}, printed
    for wf, diff in diffs.items():  # measured against micro-sam's own decoder maps
        assert float(diff) <= TOLERANCE["absolute_tolerance"], (wf, diff)
    assert float(diffs["pytorch_state_dict"]) == 0.0  # the eager network is micro-sam's computation exactly
    rdf = _rdf(package_zip)
    assert [i["id"] for i in rdf["inputs"]] == ["image"] and [o["id"] for o in rdf["outputs"]] == ["instance_maps"]
    assert [a.get("channel_names") for a in rdf["outputs"][0]["axes"] if a["type"] == "channel"] == [
        ["foreground", "center_distances", "boundary_distances"]]
    cfg = rdf["config"]["micro_sam"]
    assert cfg["model_type"] == "vit_t" and cfg["default_mode"] == "apg"
    expected_apg = default_params("apg")
    expected_apg.update(center_distance_threshold=0.45, min_size=20)
    assert cfg["apg"] == expected_apg
    assert cfg["ais"] == default_params("ais")
    assert default_params("apg")["foreground_threshold"] == 0.5 and cfg["apg"]["nms_threshold"] == 0.9
    assert {w for w in rdf["weights"]} == {"pytorch_state_dict", "torchscript", "onnx"}
    assert rdf["weights"]["torchscript"]["parent"] == "pytorch_state_dict"
    assert rdf["weights"]["onnx"]["opset_version"] <= 18
    attachment = [a for a in rdf["attachments"] if a["source"].endswith(SAM_ATTACHMENT)]
    assert attachment and len(attachment[0]["sha256"]) == 64
    assert len(rdf["weights"]["pytorch_state_dict"]["sha256"]) == 64
    assert "10.1038/s41592-024-02580-4" in [c.get("doi") for c in rdf["cite"]]
    assert rdf["authors"] == [{"name": "Test Author"}] and "nuclei" in rdf["tags"] and rdf["license"] == "CC-BY-4.0"
    with zipfile.ZipFile(package_zip) as z:
        names = set(z.namelist())
        doc = z.read(rdf["documentation"]["source"]).decode()
        cover = z.read(rdf["covers"][0]["source"])
    assert {WEIGHTS_FILE, SAM_ATTACHMENT, "test_input.npy", "test_output.npy"} <= names
    assert "# Validation" in doc and "center_distance_threshold` | `0.45`" in doc
    assert cover[:8] == b"\x89PNG\r\n\x1a\n"
    _assert_upload_ready(rdf, names, doc, cover)
    assert re.search(r"; [1-9][0-9]* objects on the test image", printed)
    assert "sample_input.tif" in names and "sample_output.tif" in names


def _assert_upload_ready(rdf: dict, names: set, doc: str, cover: bytes) -> None:
    """What the Model Zoo asks beyond bioimageio test, for an export with the built-in (StarDist) test image."""
    import io

    from PIL import Image

    from microsam_fiji.zoo.documentation import DOC_SECTIONS
    from microsam_fiji.zoo.test_data import TEST_IMAGE_LICENSE_FILE

    assert "id" not in rdf
    with Image.open(io.BytesIO(cover)) as image:
        assert image.size[0] == 2 * image.size[1] and len(cover) <= 500 * 1024
    for section in DOC_SECTIONS:
        assert f"## {section}\n" in doc, section
    assert TEST_IMAGE_LICENSE_FILE in names and TEST_IMAGE_LICENSE_FILE in doc
    assert any(a["source"] == TEST_IMAGE_LICENSE_FILE and len(a["sha256"]) == 64 for a in rdf["attachments"])
    channels = [a["channel_names"] for a in rdf["inputs"][0]["axes"] if a["type"] == "channel"][0]
    assert channels == ["gray"] and "grayscale image (1 channel)" in rdf["inputs"][0]["description"]
    steps = [step["id"] for step in rdf["inputs"][0]["preprocessing"]]
    assert set(steps) <= {"ensure_dtype", "scale_range", "scale_linear"}, steps


def test_load_from_unpacked_folder_and_rdf_yaml(package_zip, tmp_path):
    with zipfile.ZipFile(package_zip) as z:
        z.extractall(tmp_path / "unpacked")
    for source in (tmp_path / "unpacked", tmp_path / "unpacked" / "rdf.yaml"):
        model = load_model(source, device="cpu")
        assert model.model_type == "vit_t" and model.params["apg"]["min_size"] == 20


def test_package_passes_bioimageio_test_model_on_its_onnx_weights(package_zip, capsys):
    """``validate`` on a package of three formats, bioimageio.core's test_model on its ONNX weights (four
    forward passes: the test outputs reproduced, then three input sizes). The other formats run bioimageio.core's
    model code elsewhere: pytorch_state_dict through test_model on test_export.py's package (offline, with GitHub
    users); torchscript through bioimageio.core's prediction pipeline in a process without micro-sam
    (``test_tensor_path_runs_in_bioimageio_core_alone_and_matches_micro_sam``), and every format reproduced micro-sam
    when the export made it (``demo_export``)."""
    from microsam_fiji.zoo.validate import validate_package

    assert set(_rdf(package_zip)["weights"]) == {"pytorch_state_dict", "torchscript", "onnx"}
    result = validate_package(package_zip, weight_format="onnx")
    report = result.format(max_lines=10)
    print(report)
    assert result.passed, report
    names = " ".join(c.name for c in result.checks)
    assert "Reproduce test outputs from test inputs (onnx)" in names, names
    assert "(torchscript)" not in names, names  # weight_format restricts the run to one format
    assert "micro-sam metadata" in names


def test_validate_cli_exit_status(package_zip, tmp_path, capsys):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(package_zip.read_bytes()[:5000])
    assert main(["validate", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "not a valid zip" in out


def test_round_trip_apg_and_ais_labels_equal_source_checkpoint(package_zip, demo_model, small_image):
    model = load_model(package_zip, device="cpu")
    assert model.default_mode == "apg" and model.model_type == "vit_t"
    assert model.params["apg"]["center_distance_threshold"] == 0.45 and model.params["apg"]["min_size"] == 20
    from_package = segment_with_scores(small_image, model)  # the package's mode and parameters
    assert from_package.mode == "apg"
    from_checkpoint = segment_with_scores(small_image, demo_model, "apg", **model.params["apg"])
    assert from_package.labels.max() > 5
    np.testing.assert_array_equal(from_package.labels, from_checkpoint.labels)
    ais_package = segment_with_scores(small_image, model, "ais")
    ais_checkpoint = segment_with_scores(small_image, demo_model, "ais")
    assert ais_package.labels.max() > 5
    np.testing.assert_array_equal(ais_package.labels, ais_checkpoint.labels)


def test_tensor_path_runs_in_bioimageio_core_alone_and_matches_micro_sam(package_zip, demo_model, small_image,
                                                                          tmp_path):
    """What ilastik / deepImageJ users get: bioimageio.core prediction of the torchscript weights (ilastik's
    choice) in a process that imports neither microsam_fiji nor micro-sam."""
    from microsam_fiji.engines.state import image_state

    np.save(tmp_path / "image.npy", small_image)
    script = textwrap.dedent(f"""
        import os, sys
        os.environ["BIOIMAGEIO_PERFORM_IO_CHECKS"] = "false"
        import numpy as np
        from bioimageio.core import create_prediction_pipeline, predict
        from bioimageio.core.digest_spec import create_sample_for_model
        from bioimageio.spec import load_model_description
        descr = load_model_description({str(package_zip)!r}, perform_io_checks=False)
        image = np.load({str(tmp_path / 'image.npy')!r}).astype("float32")[None, None]
        sample = create_sample_for_model(descr, inputs={{"image": image}})
        pipeline = create_prediction_pipeline(descr, weight_format="torchscript", devices=["cpu"])
        result = predict(model=pipeline, inputs=sample)
        np.save({str(tmp_path / 'maps.npy')!r}, np.asarray(result.members["instance_maps"].data))
        imported = [m for m in sys.modules if m.split(".")[0] in ("microsam_fiji", "micro_sam")]
        assert not imported, imported
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    maps = np.load(tmp_path / "maps.npy")
    state = image_state(demo_model, small_image)
    expected = np.stack([state.foreground, state.center_distances, state.boundary_distances])[None]
    assert maps.shape == expected.shape == (1, 3, 256, 256)
    diff = np.abs(maps - expected)
    mismatched = (diff > TOLERANCE["absolute_tolerance"]).mean() * 1e6
    assert mismatched <= TOLERANCE["mismatched_elements_per_million"], (diff.max(), mismatched)


# --- refusals ---------------------------------------------------------------------------------------------------

def test_corrupted_zip_is_refused(package_zip, tmp_path):
    broken = tmp_path / "model.zip"
    broken.write_bytes(package_zip.read_bytes()[:20000])
    with pytest.raises(UserError, match="not a valid zip file"):
        load_model(broken)


def test_foreign_model_without_micro_sam_config_is_refused(package_zip, tmp_path):
    import yaml

    rdf = _rdf(package_zip)
    del rdf["config"]["micro_sam"]
    foreign = rewrite_zip(package_zip, tmp_path / "foreign.zip", replace={"rdf.yaml": yaml.safe_dump(rdf)})
    with pytest.raises(UserError, match=r"without micro-sam APG metadata \(config.micro_sam\)"):
        load_model(foreign)


def test_missing_attachment_is_refused(package_zip, tmp_path):
    incomplete = rewrite_zip(package_zip, tmp_path / "incomplete.zip", drop={SAM_ATTACHMENT})
    with pytest.raises(UserError, match=f"lacks its attachment file '{SAM_ATTACHMENT}'"):
        load_package(incomplete)


def test_hash_mismatch_is_refused(package_zip, tmp_path):
    import io

    import torch

    with zipfile.ZipFile(package_zip) as z:
        parts = torch.load(io.BytesIO(z.read(SAM_ATTACHMENT)), weights_only=True)
    first = next(iter(parts))
    parts[first] = parts[first] + 1.0  # a plausible but different file
    buf = io.BytesIO()
    torch.save(parts, buf)
    tampered = rewrite_zip(package_zip, tmp_path / "tampered.zip", replace={SAM_ATTACHMENT: buf.getvalue()})
    with pytest.raises(UserError, match=f"'{SAM_ATTACHMENT}' does not match its recorded sha256"):
        load_model(tampered)


def test_export_refuses_checkpoint_without_decoder(random_checkpoint, tmp_path):
    import torch

    state = torch.load(random_checkpoint, weights_only=False)
    del state["decoder_state"]
    torch.save(state, tmp_path / "sam_only.pt")
    with pytest.raises(UserError, match="has no instance decoder"):
        export_package(tmp_path / "sam_only.pt", tmp_path / "out.zip", name="no decoder")
    assert not (tmp_path / "out.zip").exists()


@pytest.mark.parametrize("args, message", [
    (["--apg-param", "center=2"], "out of range"),
    (["--apg-param", "bogus=1"], "unknown apg parameter 'bogus'"),
    (["--name", "bad/name"], "package name 'bad/name' is not allowed"),
    (["--license", "not-a-license"], "unknown license 'not-a-license'"),
])
def test_export_cli_refuses_bad_options_in_one_line(tmp_path, capsys, args, message):
    argv = ["export", "--checkpoint", str(DEMO_CHECKPOINT), "--name", "valid name", "--out",
            str(tmp_path / "m.zip"), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "m.zip").exists()

