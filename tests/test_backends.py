"""The model's passes through ONNX Runtime (the CPU default) give eager PyTorch's instances; progress moves inside
the passes and Esc stops them; the exported graphs are reused; bad choices are one line."""
from __future__ import annotations

import time

import numpy as np
import pytest

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.progress import Cancelled, reporting
from microsam_fiji.engines.segment import segment_with_scores
from microsam_fiji.engines.state import compute_state
from microsam_fiji.models.load import load_model

from helpers.instance_match import best_ious

pytestmark = pytest.mark.slow
TILED = {"tile_shape": (128, 256), "halo": (0, 0)}  # two tiles of the 256 x 256 crop: micro-sam's tiled path


@pytest.fixture(scope="module")
def eager():
    return load_model("demo", device="cpu", backend="torch")


@pytest.fixture(scope="module")
def onnx():
    return load_model("demo", device="cpu", backend="onnx")


def _matched_scores(reference, other) -> list[float]:
    """|score difference| of each reference object and the other run's object it overlaps most."""
    diffs = []
    for label, score in reference.scores.items():
        values, counts = np.unique(other.labels[reference.labels == label], return_counts=True)
        diffs.append(abs(score - other.scores.get(int(values[np.argmax(counts)]), np.inf)))
    return diffs


@pytest.mark.parametrize("case", ["whole", "tiled"])
def test_onnx_gives_eager_torchs_instances(eager, onnx, stardist_image, small_image, case):
    """The acceptance of a default backend: same count, every object IoU >= 0.99, APG scores within 1e-5 — for
    APG and AIS, on the 512 x 512 nuclei image and on a tiled crop (micro-sam's tiled generators call the
    decoder's ``_forward_impl`` directly)."""
    assert (eager.backend, onnx.backend) == ("torch", "onnx")
    image, tiling = (stardist_image, {}) if case == "whole" else (small_image, TILED)
    for mode in ("apg", "ais"):
        reference = segment_with_scores(image, eager, mode, **tiling)
        other = segment_with_scores(image, onnx, mode, **tiling)
        n = int(reference.labels.max())
        assert n >= 10, f"{mode}: the reference found {n} objects"
        assert int(other.labels.max()) == n, mode
        ious = best_ious(reference.labels, other.labels)
        assert min(ious.values()) >= 0.99, (mode, sorted(ious.values())[:3])
        if mode == "apg":
            assert len(reference.scores) == n
            assert max(_matched_scores(reference, other)) <= 1e-5


def _recorder(calls, cancel_at=None):
    def reporter(stage, current, total):
        calls.append((stage, current, total))
        if cancel_at is not None and cancel_at(stage, current, total):
            raise Cancelled()
    return reporter


def test_torch_passes_report_their_blocks_and_stop_inside(eager, small_image):
    calls: list = []
    with reporting(_recorder(calls)):
        compute_state(eager, small_image)
    encoder = [(c, t) for s, c, t in calls if s == "encoding the image"]
    decoder = [(c, t) for s, c, t in calls if s == "instance decoder"]
    for steps in (encoder, decoder):
        assert len(steps) >= 5 and steps[0][0] == 0, steps
        assert [c for c, _ in steps] == sorted(c for c, _ in steps), "the fraction went back"
    assert encoder[-1][0] == encoder[-1][1]

    calls.clear()
    before = len(eager.cache)
    with pytest.raises(Cancelled), reporting(_recorder(calls, lambda s, c, t: s == "encoding the image" and c == 3)):
        segment_with_scores(small_image[:200, :200], eager)
    assert not any(s == "instance decoder" for s, _, _ in calls), "the encoder ran on after Esc"
    assert len(eager.cache) == before, "a cancelled pass left an entry in the embedding cache"


def test_onnx_pass_stops_on_cancel_and_reports_a_moving_fraction(onnx, small_image):
    image = small_image[:, ::-1].copy()  # not cached by another test
    compute_state(onnx, image)  # the graphs' run times: what the fractions of the next runs are based on
    other = image[::-1].copy()
    calls: list = []
    start = time.perf_counter()
    with pytest.raises(Cancelled), reporting(_recorder(calls, lambda s, c, t: s == "encoding the image" and c)):
        compute_state(onnx, other)
    assert time.perf_counter() - start < 2.0, "Esc took longer than 2 s to stop the encoder"
    assert calls[-1][0] == "encoding the image" and calls[-1][2] == 100
    calls.clear()
    with reporting(_recorder(calls)):
        assert compute_state(onnx, other).foreground.shape == other.shape  # the session runs on after a stop
    fractions = [c for s, c, t in calls if s == "instance decoder" and t == 100]
    assert fractions and max(fractions) > 0 and fractions == sorted(fractions), calls


def test_tiles_count_as_parts_of_one_fraction(onnx, small_image):
    calls: list = []
    with reporting(_recorder(calls)):
        compute_state(onnx, small_image[::-1, ::-1].copy(), **TILED)
    stages = {s for s, _, _ in calls}
    assert {"encoding tile 1/2", "encoding tile 2/2", "instance decoder, tile 1/2"} <= stages, stages
    tile_steps = [c / t for s, c, t in calls if s.startswith("encoding tile") and t]
    assert tile_steps == sorted(tile_steps) and tile_steps[-1] > 0.5


def test_graphs_are_exported_once_per_weights(onnx, monkeypatch):
    import torch

    def no_export(*_args, **_kwargs):
        raise AssertionError("the graphs were exported again")

    monkeypatch.setattr(torch.onnx, "export", no_export)
    assert load_model("demo", device="cpu", backend="onnx").backend == "onnx"


def test_unwritable_graph_cache(tmp_path, monkeypatch, random_checkpoint):
    """A default onnx falls back to torch with a warning; a chosen one is refused in one line naming the fix."""
    import logging

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("MICROSAM_FIJI_CACHE", str(blocked))
    with pytest.raises(UserError, match="MICROSAM_FIJI_CACHE.*--backend torch"):
        load_model(random_checkpoint, device="cpu", backend="onnx")
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("microsam_fiji.models.backends").addHandler(handler)
    try:
        assert load_model(random_checkpoint, device="cpu").backend == "torch"
    finally:
        logging.getLogger("microsam_fiji.models.backends").removeHandler(handler)
    assert any("running the model with torch" in m for m in messages), messages


def test_bad_backend_names(monkeypatch):
    with pytest.raises(UserError, match="unknown backend 'tensorrt': use one of torch, onnx"):
        load_model("demo", backend="tensorrt")
    monkeypatch.setenv("MICROSAM_FIJI_BACKEND", "openvino")
    with pytest.raises(UserError, match=r"unknown \$MICROSAM_FIJI_BACKEND 'openvino'"):
        load_model("demo")


def test_our_untiled_decoder_step_is_micro_sams_initialize(onnx, eager, small_image):
    """engines/state computes the maps of an untiled image as micro-sam's ``initialize`` does (without building
    its generator); the onnx decoder's resize is torch_em's ``postprocess_masks``."""
    import torch
    from micro_sam import util

    from microsam_fiji.core.micro_sam_compat import decoder_maps
    from microsam_fiji.engines.micro_sam import generator
    from microsam_fiji.engines.state import decoder_maps_of

    image = small_image[:200, :232].copy()
    for model in (eager, onnx):
        embeddings = util.precompute_image_embeddings(model.predictor, image, ndim=2, verbose=False)
        gen = generator(model, "ais", False)
        gen.initialize(image, image_embeddings=embeddings)
        reference = decoder_maps(gen)
        assert reference[0].shape == image.shape and reference[0].max() > 0.5
        for ours, theirs in zip(decoder_maps_of(model, embeddings), reference):
            assert np.array_equal(ours, theirs)
    maps = torch.rand(1, 3, 1024, 1024)
    torch_em = eager.torch_decoder().postprocess_masks(maps, (1024, 719), (512, 360))
    assert torch.equal(onnx.decoder.postprocess_masks(maps, (1024, 719), (512, 360)), torch_em)


def test_a_cold_apg_run_with_cached_graphs_does_not_import_torch_em(onnx, small_image, tmp_path):
    """The onnx default's point for a cold start: neither torch_em nor micro-sam's instance_segmentation module
    (2-3 s of imports) is loaded when the graphs are on disk, nor napari (0.9 s; micro-sam's util would take its
    progress bar)."""
    import subprocess
    import sys

    import tifffile

    path = tmp_path / "crop.tif"
    tifffile.imwrite(path, small_image[:128, :128])
    code = ("import sys; from microsam_fiji.cli import main; main(['segment', sys.argv[1], '--out', sys.argv[2], "
            "'--quiet']); print(sorted(m for m in sys.modules if m.startswith(('torch_em', "
            "'micro_sam.instance_segmentation', 'napari'))))")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
    assert (tmp_path / "out" / "crop_labels.tif").exists()


def test_an_onnx_model_can_be_deep_copied_and_pickled(onnx):
    """copy.deepcopy(predictor.model) (what users and our tests do to vary a model) and pickling (a Dask worker)
    keep working with the ONNX passes: the copy opens its own session on the same graph."""
    import copy
    import pickle

    import torch

    encoder = onnx.predictor.model.image_encoder
    images = torch.rand(1, 3, 1024, 1024)
    expected = encoder(images)
    for clone in (copy.deepcopy(encoder), pickle.loads(pickle.dumps(encoder))):
        assert clone.graph.session is not encoder.graph.session
        assert torch.equal(clone(images), expected)


def test_per_image_norms_export_to_graphs_that_sum_like_torch(tmp_path):
    """The decoder's per-image norms (BatchNorm in training mode, InstanceNorm) on a 1024 x 1024 plane: ONNX
    Runtime's own float32 reduction over the whole plane drifts; ours (row sums, then over rows) stays within
    float32 rounding of PyTorch's, which is what keeps ONNX's instances equal to eager's at 1024 x 1024."""
    import onnxruntime as ort
    import torch

    from microsam_fiji.models.backends.onnx_runtime import _ImageStatistics, _per_image_norm

    torch.manual_seed(0)
    x = 40.0 + 3.0 * torch.randn(1, 4, 1024, 1024)  # activations with a large mean, as after a ReLU
    for norm in (torch.nn.BatchNorm2d(4).train(), torch.nn.InstanceNorm2d(4, affine=True)):
        assert _per_image_norm(norm)
        with torch.no_grad():
            torch.nn.init.uniform_(norm.weight, 0.5, 2.0)
            torch.nn.init.uniform_(norm.bias, -1.0, 1.0)
            reference = norm(x).numpy()
            module = _ImageStatistics(norm)
            assert np.abs(module(x).numpy() - reference).max() < 1e-5
            path = tmp_path / f"{type(norm).__name__}.onnx"
            torch.onnx.export(module, (x,), str(path), opset_version=18, dynamo=True, external_data=False,
                              input_names=["input"], output_names=["output"])
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, {"input": x.numpy()})[0]
        assert np.abs(out - reference).max() < 2e-5, type(norm).__name__
    assert not _per_image_norm(torch.nn.BatchNorm2d(4).eval())  # running statistics: exported as they are
