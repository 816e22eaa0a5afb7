"""Fine-tuning (issue 29): ``microsam_fiji.finetune`` and ``microsam-fiji train`` on micro-sam's trainer.

The trainings are short (a random vit_t with decoder, 256x256 patches, two iterations) and run micro-sam's real
``train_sam`` (a spy wraps it to see what it was given): the checkpoint must load in micro-sam and here, say how it
was made, and export must publish that. The data checks run without any training."""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.progress import Cancelled, reporting
from microsam_fiji.training import finetune
from microsam_fiji.training.data import gather, renumbered
from microsam_fiji.training.provenance import KEY, export_defaults

from helpers.training import DATA, crops, write_folder

TINY = dict(n_objects_per_batch=2, n_sub_iteration=1, evaluate=False, minutes=None)


class TrainSamSpy:
    """Wraps micro-sam's real ``train_sam`` and keeps what each call was given."""

    def __init__(self) -> None:
        import micro_sam.training

        self.real = micro_sam.training.train_sam
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        start = torch.load(kwargs["checkpoint_path"], map_location="cpu", weights_only=True)
        x, _ = next(iter(kwargs["train_loader"]))
        self.calls.append({**kwargs, "start_state": start, "patch": tuple(x.shape[-2:])})
        return self.real(**kwargs)


@contextlib.contextmanager
def spying():
    import micro_sam.training

    spy = TrainSamSpy()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(micro_sam.training, "train_sam", spy)
        yield spy


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- one short training: two iterations, stopped by Esc after the first and resumed by the CLI --------------------

@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, random_checkpoint):
    """Python: ``finetune`` on a folder from a random vit_t, 256x256 patches, a validation after each iteration;
    the reporter raises ``Cancelled`` (Esc) at its first report after the first validation."""
    root = tmp_path_factory.mktemp("train")
    images = write_folder(root / "data")
    out = root / "nuclei.pt"
    reports: list[str] = []
    steps: list = []

    def esc_after_first_epoch(stage, current, total):
        reports.append(stage)
        if any("validation" in s for s in reports[:-1]):
            raise Cancelled()

    with spying() as spy, reporting(esc_after_first_epoch):
        result = finetune(images, out=out, model=random_checkpoint, n_iterations=2, patch_shape=256,
                          iterations_per_epoch=1, data_description="stardist img2d crops",
                          data_source="10.5281/zenodo.1234", progress=steps.append, **TINY)
    kept = torch.load(out, map_location="cpu", weights_only=True)  # copies: the resumed run replaces the file
    resume_weights = torch.load(result.work_dir / "resume.pt", map_location="cpu", weights_only=True)
    return {"result": result, "out": out, "kept": kept, "resume_weights": resume_weights, "calls": spy.calls,
            "steps": steps, "images": images, "root": root}


@pytest.fixture(scope="module")
def resumed_run(stopped_run):
    """CLI: ``microsam-fiji train --resume`` trains the iteration left."""
    from microsam_fiji.cli import main

    printed = io.StringIO()
    with spying() as spy, contextlib.redirect_stdout(printed):
        status = main(["train", "--images", str(stopped_run["images"]), "--out", str(stopped_run["out"]), "--resume",
                       "--minutes", "0", "--iterations", "2", "--no-eval"])
    return {"status": status, "out": stopped_run["out"], "printed": printed.getvalue(), "calls": spy.calls}


def test_esc_keeps_the_best_checkpoint_so_far(stopped_run):
    from micro_sam.instance_segmentation import get_predictor_and_decoder

    result, kept = stopped_run["result"], stopped_run["kept"]
    assert result.stopped == "cancelled" and result.iterations == 1 and result.checkpoint == stopped_run["out"]
    assert result.work_dir is not None and (result.work_dir / "run.json").is_file()  # kept for resume
    assert kept[KEY]["iterations"] == 1 and kept[KEY]["status"] == "stopped"
    # after one epoch its weights are the best so far, and they are what a resume starts from
    assert _same_weights(kept["decoder_state"], stopped_run["resume_weights"]["decoder_state"])
    assert set(kept) == {"model_state", "decoder_state", KEY}
    predictor, _ = get_predictor_and_decoder("vit_t", stopped_run["result"].work_dir / "resume.pt", device="cpu")
    assert _same_weights(predictor.model.state_dict(), kept["model_state"])


def test_settings_reach_micro_sams_trainer(stopped_run, random_checkpoint):
    from microsam_fiji.models.checkpoint import read_checkpoint

    (call,) = stopped_run["calls"]
    assert call["n_iterations"] == 2 and call["with_segmentation_decoder"] is True
    assert call["freeze"] == ["image_encoder"] and call["peft_kwargs"] is None
    assert call["n_objects_per_batch"] == 2 and call["n_sub_iteration"] == 1 and call["lr"] == 1e-4
    assert call["device"] == "cpu" and call["model_type"] == "vit_t" and call["patch"] == (256, 256)
    assert len(call["train_loader"].dataset) == 1 and len(call["val_loader"].dataset) == 1
    _, start_sam = read_checkpoint(random_checkpoint)
    assert _same_weights(start_sam, call["start_state"]["model_state"])  # the start model is what micro-sam got


def test_progress_tells_loss_validation_and_eta(stopped_run, resumed_run):
    first, *rest = stopped_run["steps"]
    assert first.iteration == 1 and first.loss is not None and first.eta_s is not None and first.validation is None
    assert rest and rest[0].epoch_end and rest[0].validation == rest[0].best
    lines = resumed_run["printed"].splitlines()
    assert any(line.startswith("[iteration 2/2, decoder loss") and "validation" in line for line in lines)
    assert "2 iterations" in lines[-1] and "stopped by iterations" in lines[-1]


def test_resume_continues_through_the_cli(stopped_run, resumed_run):
    from micro_sam.instance_segmentation import get_predictor_and_decoder

    assert resumed_run["status"] == 0, resumed_run["printed"]
    (call,) = resumed_run["calls"]
    assert call["n_iterations"] == 1 and call["n_objects_per_batch"] == 2  # the iteration left, same settings
    assert _same_weights(call["start_state"]["decoder_state"], stopped_run["resume_weights"]["decoder_state"])
    saved = torch.load(resumed_run["out"], map_location="cpu", weights_only=True)  # weights only: no objects
    record = saved[KEY]
    assert record["iterations"] == 2 and record["status"] == "done" and len(record["history"]) == 2
    assert not stopped_run["result"].work_dir.exists()  # a finished run leaves no work folder
    predictor, decoder = get_predictor_and_decoder("vit_t", resumed_run["out"], device="cpu")
    assert _same_weights(predictor.model.state_dict(), saved["model_state"])
    assert _same_weights(decoder.state_dict(), saved["decoder_state"])


def test_the_checkpoint_loads_and_segments_here(resumed_run):
    from microsam_fiji import load_model, segment

    model = load_model(resumed_run["out"], device="cpu", backend="torch")
    assert model.model_type == "vit_t"
    labels = segment(crops()[0][0][:128, :128], model, "ais")  # AIS: the decoder alone, quick with any weights
    assert labels.shape == (128, 128)


def test_training_changed_the_weights_it_was_allowed_to(resumed_run, random_checkpoint):
    from microsam_fiji.models.checkpoint import read_checkpoint

    (start, start_sam), saved = read_checkpoint(random_checkpoint), torch.load(resumed_run["out"], weights_only=True)
    # frozen on a CPU: its weights stay (vit_t's BatchNorm statistics follow the data, as micro-sam trains it)
    statistics = ("running_mean", "running_var", "num_batches_tracked")
    encoder = [k for k in start_sam if k.startswith("image_encoder.") and not k.endswith(statistics)]
    assert encoder and all(torch.equal(start_sam[k], saved["model_state"][k]) for k in encoder)
    assert not _same_weights(start["decoder_state"], saved["decoder_state"])  # the decoder trained


def test_the_checkpoint_records_how_it_was_trained(resumed_run, random_checkpoint):
    record = torch.load(resumed_run["out"], weights_only=True)[KEY]
    _, labels = crops()
    held_out = record["data"]["validation"]["names"]
    assert record["start_model"].startswith(random_checkpoint.name) and record["iterations"] == 2
    assert record["data"]["train"]["images"] == 3 and len(held_out) == 1
    expected = sum(len(np.unique(lab)) - 1 for i, lab in enumerate(labels) if f"crop{i + 1}.tif" not in held_out)
    assert record["data"]["train"]["objects"] == expected
    assert record["settings"]["patch_shape"] == [256, 256] and record["stopped"] == "iterations"
    assert isinstance(record["validation"]["best"], float) and record["data_source"] == "10.5281/zenodo.1234"
    assert record["data_description"] == "stardist img2d crops"


def test_export_publishes_the_provenance(resumed_run):
    """What export fills in (the model card's training fields, training_data, the documentation's Training
    section), and that bioimageio.spec takes those fields as the package's training details."""
    from bioimageio.spec.model import v0_5 as spec

    from microsam_fiji.zoo import card, metadata

    found = export_defaults(resumed_run["out"])
    assert found.data_source == "10.5281/zenodo.1234"
    assert found.card_fields["training_images"] == 3 and found.card_fields["training_iterations"] == 2
    assert "random_vit_t.pt" in found.card_fields["start_model"]
    assert "## Training" in found.documentation and "stardist img2d crops" in found.documentation
    config = card.bioimageio_config(model_type="vit_t", training=found.card_fields)
    assert isinstance(config.training, spec.TrainingDetails)
    assert config.training.model_extra["validation_score"] == found.card_fields["validation_score"]
    assert metadata.training_data_source(found.data_source) == "https://doi.org/10.5281/zenodo.1234"
    assert export_defaults(DATA / "img2d.tif").card_fields == {}  # no checkpoint of ours: nothing filled in


# --- the data path -----------------------------------------------------------------------------------------------

def test_a_roiset_gives_the_data_of_its_label_image(tmp_path):
    """Label images, RoiSet.zip files (our exact ROI -> label code) and in-memory ROI lists: the same arrays, and
    micro-sam's loader draws the same patches from them."""
    from microsam_fiji.rois.roiset import read_roiset
    from microsam_fiji.training.finetune import _loaders

    from_labels = gather(write_folder(tmp_path / "a"), seed=3)
    from_rois = gather(write_folder(tmp_path / "b", labels_as="roiset"), seed=3)
    from_names = gather(write_folder(tmp_path / "c", "same name", tmp_path / "cl"), tmp_path / "cl", seed=3)
    images, _ = crops()
    roi_lists = [read_roiset(tmp_path / "b" / f"crop{i}_RoiSet.zip") for i in range(1, 5)]
    from_lists = gather(images, roi_lists, seed=3)
    for other in (from_rois, from_names, from_lists):
        for a, b in zip(from_labels.train + from_labels.val, other.train + other.val):
            assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert from_rois.train[0].labels_from == "RoiSet" and from_lists.train[0].labels_from == "ROIs"
    settings = {"patch_shape": [128, 128], "batch_size": 1, "iterations_per_epoch": 3, "device": "cpu"}
    batches = []
    for data in (from_labels, from_rois):
        np.random.seed(0)
        torch.manual_seed(0)
        train, _ = _loaders(settings, data)
        batches.append([tuple(t.clone() for t in batch) for batch in train])
    assert all(torch.equal(a, b) for one, two in zip(*batches) for a, b in zip(one, two))


def test_labels_are_numbered_the_same_whatever_their_ids():
    labels = np.zeros((6, 6), np.uint16)
    labels[0:2, 0:2], labels[3:5, 3:5], labels[0:2, 4:6] = 900, 7, 40
    assert np.array_equal(renumbered(labels), renumbered(np.where(labels == 900, 3, labels)))
    assert renumbered(labels)[0, 0] == 1 and renumbered(labels)[0, 4] == 2 and renumbered(labels)[3, 3] == 3


def test_folders_pair_by_name_and_name_what_is_left_over(tmp_path):
    import tifffile

    from microsam_fiji.training.data import match_folders

    write_folder(tmp_path / "d")
    pairs = match_folders(tmp_path / "d")
    assert [(a.name, b.name) for a, b in pairs][0] == ("crop1.tif", "crop1_labels.tif") and len(pairs) == 4
    tifffile.imwrite(tmp_path / "d" / "extra.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(UserError, match=r"no labels for extra\.tif") as err:
        match_folders(tmp_path / "d")
    assert "\n" not in str(err.value)
    (tmp_path / "d" / "extra.tif").unlink()
    (tmp_path / "d" / "crop2.tif").unlink()
    with pytest.raises(UserError, match=r"labels without an image: crop2_labels\.tif"):
        match_folders(tmp_path / "d")


# --- bad input: one line, before any training ----------------------------------------------------------------------

def _bad_cases(tmp: Path) -> dict:
    import tifffile

    from microsam_fiji.rois.roiset import write_roiset

    images, labels = crops()
    one_object = np.where(labels[0] == labels[0].max(), 1, 0)
    cases = {"no objects": ([images[0], images[1]], [np.zeros_like(labels[0]), labels[1]],
                            "the labels of image 1 has no objects"),
             "sizes differ": ([images[0], images[1]], [labels[0][:128], labels[1]],
                              "is 256x128 but image 1 is 256x256"),
             "one image, a split": ([images[0]], [labels[0]], "a validation split needs at least 2"),
             "one object": ([images[0], images[1]], [one_object, labels[1]], "image 1 has 1 object(s)")}
    big = np.zeros((600, 600), np.uint16)
    big[500:540, 500:540] = 1
    write_roiset(tmp / "far_RoiSet.zip", big)
    cases["RoiSet outside its image"] = ([images[0], images[1]], [tmp / "far_RoiSet.zip", labels[1]],
                                         "does not fit image 1")
    (tmp / "broken.tif").write_bytes(b"not a tiff")
    cases["unreadable"] = ([tmp / "broken.tif", images[1]], [labels[0], labels[1]], "broken.tif")
    tifffile.imwrite(tmp / "ok.tif", images[0])
    cases["unreadable labels"] = ([tmp / "ok.tif", images[1]], [tmp / "broken.tif", labels[1]], "broken.tif")
    return cases


@pytest.mark.parametrize("case", ["no objects", "sizes differ", "one image, a split", "one object",
                                  "RoiSet outside its image", "unreadable", "unreadable labels"])
def test_bad_input_stops_in_one_line_before_training(case, tmp_path, monkeypatch):
    import micro_sam.training

    def never(**kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(micro_sam.training, "train_sam", never)
    images, labels, message = _bad_cases(tmp_path)[case]
    with pytest.raises(UserError) as err:  # val_fraction 0: every image is checked as a training image
        finetune(images, labels, tmp_path / "out.pt", n_iterations=1, **TINY,
                 val_fraction=0.0 if case == "one object" else 0.2)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out.pt").exists() and not (tmp_path / "out.pt.training").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"minutes": -1}, "positive time budget"), ({"freeze": ["encoder"]}, "unknown part 'encoder'"),
    ({"peft": "lora"}, "use one of attention"), ({"peft": "attention"}, "does not support PEFT for vit_t"),
    ({"resume": True}, "nothing to resume"), ({"patch_shape": 16}, "at least 64 pixels"),
    ({"data_source": "not an id!"}, "data_source 'not an id!'"), ({"device": "cuda:7"}, "cuda")])
def test_bad_settings_stop_in_one_line(kwargs, message, tmp_path, monkeypatch):
    import micro_sam.training

    monkeypatch.setattr(micro_sam.training, "train_sam", lambda **kw: pytest.fail("training started"))
    images, labels = crops()
    with pytest.raises(UserError) as err:
        finetune(images[:2], labels[:2], tmp_path / "out.pt", **{"n_iterations": 1, **TINY, **kwargs})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_existing_output_is_not_replaced(tmp_path):
    (tmp_path / "mine.pt").write_bytes(b"the user's file")
    images, labels = crops()
    with pytest.raises(UserError, match="exists: give another output or overwrite"):
        finetune(images[:2], labels[:2], tmp_path / "mine.pt", n_iterations=1, **TINY)
    assert (tmp_path / "mine.pt").read_bytes() == b"the user's file"


def test_cli_names_unmatched_files_in_one_line(tmp_path, capsys):
    from microsam_fiji.cli import main

    write_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "crop3_labels.tif").unlink()
    assert main(["train", "--images", str(tmp_path / "imgs"), "--out", str(tmp_path / "m.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("microsam-fiji: error: no labels for crop3.tif") and "\n" not in err


def test_a_run_record_is_plain_json(tmp_path):
    """The work folder's record is JSON (never unpickled); the checkpoint's provenance is plain values."""
    from microsam_fiji.training.finetune import _new_record, _provenance

    data = gather(*crops(), seed=0)
    record = _new_record("demo", "vit_t", {"patch_shape": [256, 256], "lr": 1e-4}, data, None, None)
    assert json.loads(json.dumps(record)) == record
    path = tmp_path / "p.pt"
    torch.save({KEY: _provenance(record)}, path)
    assert torch.load(path, weights_only=True)[KEY]["data"]["train"]["images"] == 3


# --- the monitor: budget, progress, early stopping (micro-sam's calls replayed on a clock of our own) ---------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _monitor(monkeypatch, **kwargs):
    from microsam_fiji.training import monitor as monitor_module

    clock = Clock()
    monkeypatch.setattr(monitor_module.time, "monotonic", clock)
    epochs: list[tuple] = []
    steps: list = []
    options = dict(started=clock.now, deadline=None, reserve_s=0.0, done_before=0, target=None, best_before=None,
                   on_epoch=lambda *a: epochs.append(a), on_step=steps.append)
    found = monitor_module.Monitor(**{**options, **kwargs})
    found._per_epoch = 2
    return found, clock, epochs, steps


def _epoch(monitor, clock, metric: float, iteration_s: float = 10.0, validation_s: float = 5.0) -> None:
    """What torch_em's fit does in an epoch of two iterations: update after each but the run's last, the
    scheduler's step with the validation metric, then the description."""
    clock.now += iteration_s
    monitor.pbar_update.emit(1)
    clock.now += iteration_s
    monitor.pbar_update.emit(1)
    clock.now += validation_s
    monitor._validated(metric)
    monitor.pbar_description.emit("Epoch ...")


def test_the_budget_stops_at_an_epoch_end_when_the_next_would_not_fit(monkeypatch):
    from microsam_fiji.training.monitor import StopTraining

    # epochs cost 25 s (2 x 10 s + 5 s validation): after two (t = 50 s) a third would end at 75 s > 70 s
    monitor, clock, epochs, steps = _monitor(monkeypatch, deadline=1000.0 + 70.0)
    monitor.pbar_total.emit(10**7)
    _epoch(monitor, clock, 0.9)
    with pytest.raises(StopTraining):
        _epoch(monitor, clock, 0.8)
    assert [e[:3] for e in epochs] == [(2, 0.9, True), (4, 0.8, True)]  # both kept before the stop
    assert steps[-1].epoch_end and steps[-1].best == 0.8 and steps[-1].total == 4  # no whole epoch left
    assert "validation 0.8000 (best 0.8000)" in steps[-1].line()


def test_the_last_epoch_of_an_iteration_target_is_no_budget_stop(monkeypatch):
    monitor, clock, epochs, steps = _monitor(monkeypatch, deadline=1000.0 + 30.0, target=2)
    monitor.pbar_total.emit(2)
    clock.now += 10.0
    monitor.pbar_update.emit(1)
    clock.now += 15.0  # the run's last iteration is not reported by torch_em
    monitor._validated(0.5)
    monitor.pbar_description.emit("Epoch 1")  # finished: no StopTraining although the budget is spent
    assert monitor.iteration == 2 and [e[:3] for e in epochs] == [(2, 0.5, True)]


def test_a_validation_left_by_early_stopping_is_kept(monkeypatch):
    monitor, clock, epochs, steps = _monitor(monkeypatch, best_before=0.4, done_before=6)
    monitor.pbar_total.emit(10)
    _epoch(monitor, clock, 0.7)
    clock.now += 25.0
    monitor._validated(0.6)  # torch_em's early stopping breaks before describing this epoch
    monitor.flush()
    assert [e[:3] for e in epochs] == [(8, 0.7, False), (10, 0.6, False)]  # resumed: 0.4 stays the best
    assert monitor.best == 0.4 and monitor.history == [(8, 0.7), (10, 0.6)]


def test_cpu_trainers_train_in_float32_inside_the_block():
    from torch_em.trainer import DefaultTrainer

    from microsam_fiji.core.micro_sam_compat import float32_training_on_cpu

    def trainer():
        model = torch.nn.Linear(2, 2)
        return DefaultTrainer(name="t", train_loader=[], val_loader=[], model=model, loss=torch.nn.MSELoss(),
                              optimizer=torch.optim.AdamW(model.parameters()), metric=torch.nn.MSELoss(),
                              device="cpu", mixed_precision=True, logger=None)

    with float32_training_on_cpu():
        inside = trainer()
    assert inside.mixed_precision is False and inside.scaler is None
    assert trainer().mixed_precision is True  # only inside the block


# --- in Fiji: micro-sam Train in ImageJ started as a user starts it --------------------------------------------------

def test_train_through_the_plugin_on_an_open_image_and_its_roi_manager(installed, random_checkpoint, tmp_path):
    """The segment -> correct -> train loop's last step: an open image whose objects are in the ROI Manager,
    ``run("micro-sam Train", ...)`` in the plugin's worker (a random vit_t, one iteration on a 256x256 image):
    the checkpoint micro-sam loads, and micro-sam APG segments with it."""
    import tifffile
    from micro_sam.instance_segmentation import get_predictor_and_decoder

    from microsam_fiji.rois.roiset import write_roiset

    from helpers.imagej import run_imagej, worker_log

    images, masks = crops()
    image, labels = images[0], masks[0]
    path, roiset, out = tmp_path / "cells.tif", tmp_path / "cells_RoiSet.zip", tmp_path / "cells.pt"
    tifffile.imwrite(path, image, imagej=True)
    write_roiset(roiset, labels)
    macro = f"""
open("{path}");
roiManager("open", "{roiset}");
run("micro-sam Train", "out=[{out}] model=[{random_checkpoint}] iterations=1 patch=256 validation=0 minutes=10 \
objects=2 prompt_rounds=1");
run("micro-sam APG", "model=[{out}] replace");
print("apg_count=" + call("microsam_fiji.MicroSamAPG.lastResult", "count"));
"""
    # eager torch: the onnx backend would export graphs for each new set of weights (the start model, the result)
    done = run_imagej(installed, macro, tmp_path, timeout=600, env=dict(os.environ, MICROSAM_FIJI_BACKEND="torch"))
    assert "apg_count=" in done.stdout, f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    assert f"micro-sam Train: {out} (1 iterations" in done.stdout + done.stderr
    assert "mSA" in done.stdout + done.stderr  # evaluated before and after on the validation image
    predictor, decoder = get_predictor_and_decoder(model_type="vit_t", checkpoint_path=str(out), device="cpu")
    assert predictor is not None and decoder is not None
    state = torch.load(out, map_location="cpu", weights_only=True)
    assert state[KEY]["data"]["train"]["images"] == 1  # trained on the one open image (validated on it too)
    assert state[KEY]["data"]["train"]["labels_from"] == ["ROIs"]  # the ROI Manager's, as ImageJ encodes them


def test_files_of_one_name_in_several_folders_are_told_apart(tmp_path):
    """Datasets often name every image raw.tif in its own folder: the split holds out one of them, not all."""
    import tifffile

    from microsam_fiji.core.tiff_io import write_labels

    images, labels = crops()
    for i, name in enumerate("abc"):
        (tmp_path / name).mkdir()
        tifffile.imwrite(tmp_path / name / "raw.tif", images[i])
        write_labels(tmp_path / name / "labels.tif", labels[i])
    data = gather([tmp_path / n / "raw.tif" for n in "abc"], [tmp_path / n / "labels.tif" for n in "abc"],
                  val_fraction=0.2)
    assert len(data.train) == 2 and len(data.val) == 1
    assert sorted(p.name for p in data.train + data.val) == ["a/raw.tif", "b/raw.tif", "c/raw.tif"]


def test_training_keeps_large_blocks_for_the_next_layer_and_gives_them_back_after():
    """``finetune`` runs inside ``large_blocks_kept``: there a freed 256 MB tensor (one decoder activation at
    1024 px) is reused by the next without new page faults; afterwards glibc's defaults are back (each block faults
    anew, as torch's blocks do by default)."""
    import platform
    import resource

    from microsam_fiji.core.machine import large_blocks_kept

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's allocator only")
    assert getattr(finetune, "__wrapped__", None) is not None  # the decorator is on the public function

    def faults(n: int = 3) -> int:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(n):
            block = torch.ones(64 << 20)  # written: every page touched
            del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    outside = faults()
    with large_blocks_kept():
        with large_blocks_kept():  # nested: one setting
            faults(1)  # the heap grows once
            inside = faults()
        inside_after_nested = faults()
    after = faults()
    assert outside > 3 * 1000 and inside <= outside / 20, (outside, inside)
    assert inside_after_nested <= outside / 20, (outside, inside_after_nested)  # the outer block still keeps them
    assert after > outside / 2, (outside, after)  # glibc's defaults again
