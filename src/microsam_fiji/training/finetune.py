"""``finetune``: micro-sam's trainer (``micro_sam.training.train_sam`` with the instance decoder, loaders from
``default_sam_loader``) on a user's annotated images, started from any model ``load_model`` takes, within a time
budget, with progress, Esc / Ctrl-C, resume, and a clean micro-sam checkpoint with its provenance as the result.

What is ours around micro-sam's trainer: the data checks and conversion (:mod:`.data`), the start model handed to
micro-sam as a weights-only checkpoint written here (micro-sam takes a start model only as a file, and reads files
by unpickling: it only ever reads files this process wrote), watching the run (:mod:`.monitor`), and turning
torch_em's checkpoints (optimizer state, pickled objects) into the user's weights-only checkpoint at each epoch.

The work folder ``<out>.training/`` holds torch_em's checkpoints and logs, the start and resume weights and
``run.json`` (iterations, best validation, settings, data fingerprint). It is removed when a run ends normally
and kept when it is stopped (Esc, Ctrl-C, an error) so that ``resume=True`` can continue."""
from __future__ import annotations

import functools
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.machine import large_blocks_kept
from microsam_fiji.core.progress import Cancelled, report
from microsam_fiji.training.data import TrainingData, gather
from microsam_fiji.training.monitor import Monitor, Step, StopTraining
from microsam_fiji.training.provenance import KEY, VALIDATION_METRIC

DEFAULT_MINUTES = 15.0
RUN_NAME = "run"  # torch_em's checkpoint folder name inside the work folder
FREEZABLE = ("image_encoder", "prompt_encoder", "mask_decoder")
# micro-sam's PEFT methods that only choose which image-encoder weights train: the result is a plain SAM
# checkpoint that micro-sam, load_model and export read as any other (LoRA, FacT, SSF and AdaptFormer add modules,
# and their checkpoints need the same peft_kwargs to load)
PEFT_METHODS = {"attention": "AttentionSurgery", "bias": "BiasSurgery", "layernorm": "LayerNormSurgery",
                "blocks": "ClassicalSurgery"}
# measured defaults (docs/finetuning.md): on a CPU, the frozen image encoder and few objects per iteration are
# what makes an iteration affordable; on a GPU micro-sam's own defaults
CPU_SETTINGS: dict[str, Any] = {"freeze": ("image_encoder",), "n_objects_per_batch": 5, "n_sub_iteration": 4,
                "iterations_per_epoch": 4, "lr": 1e-4}
GPU_SETTINGS: dict[str, Any] = {"freeze": (), "n_objects_per_batch": 25, "n_sub_iteration": 8,
                                "iterations_per_epoch": 50, "lr": 1e-5}
MAX_AUTO_PATCH = 1024  # larger images are tiled at 1024 (768 + halo) by APG: a 1024 patch is seen at their scale


@dataclass
class FinetuneResult:
    """What :func:`finetune` did.

    ``checkpoint``: the result (the best validation so far).
    ``stopped``: ``"iterations"``, ``"time budget"``, ``"early stopping"``, ``"cancelled"`` (the reporter raised
    ``Cancelled``: Esc) or ``"interrupted"`` (Ctrl-C).
    ``validation``: (iteration, micro-sam's validation metric, lower is better) after each epoch.
    ``msa_before`` / ``msa_after``: APG's mean segmentation accuracy on the validation images with the start
    model and the result (None without ``evaluate``). ``work_dir``: kept for ``resume=True`` (None once done)."""

    checkpoint: Path | None
    iterations: int
    epochs: int
    minutes: float
    stopped: str
    best_validation: float | None
    validation: list[tuple[int, float]] = field(default_factory=list)
    msa_before: float | None = None
    msa_after: float | None = None
    work_dir: Path | None = None
    provenance: dict = field(default_factory=dict)


def work_dir_for(out: str | os.PathLike) -> Path:
    """The work folder of a run writing ``out``."""
    out = Path(out).expanduser()
    return out.with_name(out.name + ".training")


@large_blocks_kept()  # eager torch throughout: ~30 % faster on a CPU (core/machine.py)
def finetune(images: Any, labels: Any = None, out: str | os.PathLike = "finetuned.pt", *, model: Any = None,
             minutes: float | None = DEFAULT_MINUTES, n_iterations: int | None = None,
             patch_shape: int | Sequence[int] | None = None, val_fraction: float = 0.2, val_images: Any = None,
             val_labels: Any = None, freeze: Sequence[str] | None = None, peft: str | None = None,
             peft_layers: Sequence[int] | None = None, lr: float | None = None,
             n_objects_per_batch: int | None = None, n_sub_iteration: int | None = None,
             iterations_per_epoch: int | None = None, early_stopping: int | None = 10, device: str | None = None,
             seed: int = 0, channel: int | None = None, resume: bool = False, overwrite: bool = False,
             evaluate: bool = True, data_description: str | None = None, data_source: str | None = None,
             progress: Callable[[Step], None] | None = None) -> FinetuneResult:
    """Fine-tune a micro-sam model (SAM and its instance decoder, for APG and AIS) on annotated images with
    micro-sam's trainer, and write a micro-sam finetuning checkpoint (``model_state`` + ``decoder_state`` + how
    it was trained) that micro-sam, :func:`microsam_fiji.load_model`, ``segment`` and ``export`` take.

    Progress goes to ``progress`` and to :func:`microsam_fiji.core.progress.report` (the plugin's status bar);
    a reporter raising ``Cancelled``, or Ctrl-C, stops the run and keeps the best checkpoint so far. Every input
    is checked before training, and a bad one stops with one line (:class:`UserError`).

    Args:
        images: a folder (paired with ``labels`` by file name: ``x.tif`` with ``x_labels.tif`` or ``x_RoiSet.zip``,
            or ``x.tif`` in both folders), an image file or array, or a list of them.
        labels: a folder (None: the images' folder), or per image a label image (file or array), a RoiSet.zip /
            .roi file or a list of ImageJ ROIs (``roifile.ImagejRoi``).
        out: the checkpoint to write (.pt); an existing file is replaced only with ``overwrite``.
        model: the start model: anything :func:`microsam_fiji.load_model` takes (None: the demo model).
        minutes: the time budget for the whole call; training stops at the end of the last epoch that fits
            (None: no budget, ``n_iterations`` ends the run).
        n_iterations: iterations to train (in all, counting a resumed run's); with ``minutes`` whichever ends first.
        patch_shape: training patch (Y, X) or one side (None: the largest image side up to 1024, so that objects
            are seen at the scale APG sees them).
        val_fraction: share of the images held out for validation (0: validate on the training images).
        val_images, val_labels: a validation set instead (same forms as ``images`` / ``labels``).
        freeze: parts of SAM not trained: ``image_encoder``, ``prompt_encoder``, ``mask_decoder`` (None: the image
            encoder on a CPU, nothing on a GPU).
        peft: train only part of the image encoder with one of micro-sam's PEFT methods: ``attention``, ``bias``,
            ``layernorm`` or ``blocks`` (the whole of ``peft_layers``); vit_b and larger (micro-sam refuses it for
            vit_t); the encoder must not be frozen then.
        peft_layers: the encoder blocks PEFT applies to (None: all).
        lr: learning rate (None: 1e-4 with a frozen image encoder, else micro-sam's 1e-5).
        n_objects_per_batch, n_sub_iteration: objects per iteration and rounds of iterative prompting (None: 5 and
            4 on a CPU, micro-sam's 25 and 8 on a GPU).
        iterations_per_epoch: iterations between validations (None: 4 on a CPU, 50 on a GPU).
        early_stopping: stop after this many epochs without a better validation (None: never).
        device: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` (None: a GPU where there is one).
        seed: random seed (held-out images, patches, prompts, weights' order of updates).
        channel: the channel of multi-channel images (as ``segment``).
        resume: continue the stopped run that writes ``out`` (its settings and data; this call's budget).
        overwrite: replace an existing ``out`` (and a stopped run's work folder).
        evaluate: measure APG's mSA on the validation images with the start model and the result.
        data_description: a sentence about the data for the provenance (what, microscope, who annotated).
        data_source: a Model Zoo dataset id, DOI or URL of the training data (``export`` records it).
        progress: called with a :class:`~microsam_fiji.training.monitor.Step` after each iteration and validation.

    Returns:
        :class:`FinetuneResult`.

    Raises:
        UserError: bad input or settings, before training starts.
        Cancelled / KeyboardInterrupt: stopped before the first validation (nothing to keep)."""
    started = time.monotonic()
    out = Path(out).expanduser()
    work = work_dir_for(out)
    record = _check_output(out, work, resume, overwrite)
    settings = _settings(record, minutes=minutes, n_iterations=n_iterations, patch_shape=patch_shape,
                         val_fraction=val_fraction, freeze=freeze, peft=peft, peft_layers=peft_layers, lr=lr,
                         n_objects_per_batch=n_objects_per_batch, n_sub_iteration=n_sub_iteration,
                         iterations_per_epoch=iterations_per_epoch, early_stopping=early_stopping,
                         device=device, seed=seed, channel=channel)
    _check_source(data_source)
    _seed(settings["seed"])
    data = gather(images, labels, val_images=val_images, val_labels=val_labels,
                  val_fraction=settings["val_fraction"], seed=settings["seed"], channel=settings["channel"])
    if record is not None and record["data"]["fingerprint"] != data.fingerprint():
        raise UserError(f"the images or labels differ from those the run in '{work}' started with: resume with the "
                        "same data, or start anew with overwrite (--overwrite)")
    if settings["patch_shape"] is None:
        side = min(MAX_AUTO_PATCH, data.largest_side)
        settings["patch_shape"] = [side, side]
    report("loading the start model")
    start_state, model_type, start_label = _start_model(model, record, work)
    _check_peft(settings, model_type)
    if record is None:
        record = _new_record(start_label, model_type, settings, data, data_description, data_source)
    else:  # resumed: the earlier runs' time counts on
        record.update(status="in progress", seconds_before=float(record.get("seconds") or 0.0))
    record["settings"].update({k: settings[k] for k in ("minutes", "n_iterations", "device")})
    work.mkdir(parents=True, exist_ok=True)

    evaluate = evaluate and bool(data.val)
    eval_s = 0.0
    if evaluate and record["validation"].get("msa_before") is None:
        t = time.monotonic()
        report("measuring the start model on the validation images")
        record["validation"]["msa_before"] = _msa(start_state, model_type, data)
        eval_s = time.monotonic() - t
    elif evaluate:
        eval_s = float(record.get("eval_s") or 0.0)
    record["eval_s"] = eval_s
    _write_run(work, record)

    from microsam_fiji.core.tiff_io import atomic_write

    start_path = atomic_write(work / "start.pt", functools.partial(_torch_save, start_state))
    del start_state  # micro-sam reads its own copy: do not hold the weights twice while training
    deadline = None if settings["minutes"] is None else started + 60.0 * settings["minutes"]
    done_before = int(record["iterations"])
    target = settings["n_iterations"]
    if target is not None and done_before >= target:
        raise UserError(f"the run in '{work}' has done {done_before} of n_iterations={target}: give more "
                        "iterations (or minutes without n_iterations) to resume it")

    def on_epoch(iteration: int, metric: float, improved: bool) -> None:
        _keep(work, out, record, iteration, metric, improved, monitor, started)

    monitor = Monitor(started=started, deadline=deadline, reserve_s=eval_s, done_before=done_before, target=target,
                      best_before=record["validation"].get("best"), on_epoch=on_epoch, on_step=progress)
    try:
        stopped = _train(settings, model_type, data, start_path, work, monitor, target, done_before)
    except BaseException:
        if not (work / "resume.pt").is_file():  # no epoch finished: nothing a resume could continue
            shutil.rmtree(work, ignore_errors=True)
        raise
    seconds = float(record.get("seconds_before") or 0.0) + time.monotonic() - started
    kept = out if out.exists() and record.get("written") else None
    interrupted = stopped in ("cancelled", "interrupted")
    if interrupted and kept is None:
        shutil.rmtree(work, ignore_errors=True)
        raise Cancelled() if stopped == "cancelled" else KeyboardInterrupt()
    record.update(stopped=stopped, status="stopped" if interrupted else "done", seconds=seconds,
                  minutes=round(seconds / 60.0, 2))
    if kept is not None and evaluate and not interrupted:
        report("measuring the fine-tuned model on the validation images")
        from microsam_fiji.models.checkpoint import read_state

        best = read_state(out)
        record["validation"]["msa_after"] = _msa(best, model_type, data)
    if kept is not None:
        _write_checkpoint(out, None, record)  # the final provenance on the best weights
    if interrupted:
        _write_run(work, record)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return FinetuneResult(checkpoint=kept, iterations=int(record["iterations"]), epochs=len(record["history"]),
                          minutes=round(seconds / 60.0, 2), stopped=stopped,
                          best_validation=record["validation"].get("best"),
                          validation=[(int(h[0]), float(h[1])) for h in record["history"]],
                          msa_before=record["validation"].get("msa_before"),
                          msa_after=record["validation"].get("msa_after"),
                          work_dir=work if interrupted else None, provenance=_provenance(record))


# --- checks and settings -------------------------------------------------------------------------------------------

def _check_output(out: Path, work: Path, resume: bool, overwrite: bool) -> dict | None:
    """The stopped run's record when resuming; else clear the way for a new run (or refuse in one line)."""
    from microsam_fiji.core.writable import check_writable

    if out.suffix.lower() not in (".pt", ".pth"):
        raise UserError(f"output '{out.name}': give a .pt file for the checkpoint")
    check_writable(out, "checkpoint")
    run_file = work / "run.json"
    if resume:
        if overwrite:
            raise UserError("resume and overwrite contradict each other: give one")
        if not run_file.is_file():
            raise UserError(f"nothing to resume: no stopped run in '{work}' (a run that ended normally leaves none); "
                            f"to train further start from its result: model='{out.name}'")
        try:
            return json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"'{run_file}' is unreadable ({type(err).__name__}): start anew with overwrite") from None
    if work.exists() and not overwrite:
        raise UserError(f"a stopped run is in '{work}': continue it with resume (--resume) or start anew with "
                        "overwrite (--overwrite)")
    if out.exists() and not overwrite:
        raise UserError(f"'{out}' exists: give another output or overwrite (--overwrite)")
    if work.exists():
        if any(work.iterdir()) and not run_file.is_file():
            raise UserError(f"'{work}' holds files that are not a training run's: move it away")
        shutil.rmtree(work)
    return None


def _settings(record: dict | None, **given: Any) -> dict[str, Any]:
    from microsam_fiji.models.load import check_device
    from microsam_fiji.models.model import resolve_device

    minutes, n_iterations = given["minutes"], given["n_iterations"]
    if minutes is not None and not minutes > 0:
        raise UserError(f"minutes={minutes}: give a positive time budget (or None with n_iterations)")
    if n_iterations is not None and (int(n_iterations) != n_iterations or n_iterations < 1):
        raise UserError(f"n_iterations={n_iterations}: give a positive whole number")
    if minutes is None and n_iterations is None:
        raise UserError("give a time budget (minutes) or a number of iterations (n_iterations)")
    check_device(given["device"])
    device = str(resolve_device(given["device"]))
    if record is not None:  # a resumed run keeps its settings; budget and device are this call's
        settings = dict(record["settings"])
        settings.update(minutes=minutes, n_iterations=n_iterations, device=device)
        return settings
    defaults = CPU_SETTINGS if device == "cpu" else GPU_SETTINGS
    freeze = list(defaults["freeze"] if given["freeze"] is None and not given["peft"] else given["freeze"] or ())
    unknown = [f for f in freeze if f not in FREEZABLE]
    if unknown:
        raise UserError(f"freeze: unknown part '{unknown[0]}': use {', '.join(FREEZABLE)}")
    patch = given["patch_shape"]
    if patch is not None:
        patch = [int(patch)] * 2 if np.ndim(patch) == 0 else [int(p) for p in patch]
        if len(patch) != 2 or min(patch) < 64:
            raise UserError(f"patch_shape {given['patch_shape']}: give one side or (Y, X), each at least 64 pixels")
    lr = given["lr"] if given["lr"] is not None else (defaults["lr"] if "image_encoder" in freeze else 1e-5)
    numbers = {name: given[name] if given[name] is not None else defaults[name]
               for name in ("n_objects_per_batch", "n_sub_iteration", "iterations_per_epoch")}
    for name, value in numbers.items():
        if int(value) != value or value < 1:
            raise UserError(f"{name}={value}: give a positive whole number")
    if not lr > 0:
        raise UserError(f"lr={lr}: give a positive learning rate, e.g. 1e-5")
    if given["early_stopping"] is not None and given["early_stopping"] < 1:
        raise UserError(f"early_stopping={given['early_stopping']}: give a number of epochs, or None")
    return {"minutes": minutes, "n_iterations": n_iterations, "patch_shape": patch,
            "val_fraction": float(given["val_fraction"]), "freeze": freeze, "peft": given["peft"],
            "peft_layers": list(given["peft_layers"]) if given["peft_layers"] is not None else None,
            "lr": float(lr), **{k: int(v) for k, v in numbers.items()}, "early_stopping": given["early_stopping"],
            "device": device, "seed": int(given["seed"]), "channel": given["channel"], "batch_size": 1}


def _check_source(source: str | None) -> None:
    """``data_source`` as ``export`` will take it for the Model Zoo's ``training_data``."""
    if not source:
        return
    from microsam_fiji.zoo import metadata

    try:
        metadata.upload_fields(None, None, None, None, source)
    except UserError:
        raise UserError(f"data_source {source!r}: give a Model Zoo dataset id (e.g. 'amazing-dataset'), a DOI or an "
                        "https:// URL") from None


def _check_peft(settings: dict, model_type: str) -> None:
    peft = settings["peft"]
    if peft is None:
        return
    if peft not in PEFT_METHODS:
        raise UserError(f"peft '{peft}': use one of {', '.join(PEFT_METHODS)} (methods that keep a plain SAM "
                        "checkpoint; LoRA-type methods need their settings to load, which APG and export do not have)")
    if model_type == "vit_t":
        raise UserError("micro-sam does not support PEFT for vit_t (MobileSAM): freeze the image encoder instead "
                        "(the default on a CPU), or start from a vit_b model")
    if "image_encoder" in settings["freeze"]:
        raise UserError("PEFT trains part of the image encoder: do not also freeze it (leave freeze at its default)")


def _peft_kwargs(settings: dict) -> dict | None:
    if settings["peft"] is None:
        return None
    from micro_sam.models import peft_sam

    kwargs: dict[str, Any] = {"peft_module": getattr(peft_sam, PEFT_METHODS[settings["peft"]])}
    if settings["peft_layers"] is not None:
        kwargs["attention_layers_to_update"] = list(settings["peft_layers"])
    return kwargs


def _seed(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --- the start model --------------------------------------------------------------------------------------------------

def _start_model(model: Any, record: dict | None, work: Path) -> tuple[dict, str, str]:
    """(``{"model_state", "decoder_state"}``, model type, how the provenance names it) of the start model; a
    resumed run starts from its last epoch's weights (read weights-only)."""
    from microsam_fiji.models.load import load_model

    if record is not None:
        from microsam_fiji.models.checkpoint import read_state

        resume_file = work / "resume.pt"
        if not resume_file.is_file():
            raise UserError(f"the stopped run in '{work}' has no finished epoch to resume from: start anew with "
                            "overwrite (--overwrite)")
        state = read_state(resume_file)
        return state, record["model_type"], record["start_model"]
    from microsam_fiji.models.model import Model

    if isinstance(model, Model) and model.backend != "torch":  # its encoder is an ONNX graph: read the weights anew
        model = model.source
    loaded = load_model(model, device="cpu", backend="torch")
    sam = {k: v.detach().clone() for k, v in loaded.predictor.model.state_dict().items()}
    if loaded.decoder_state is None:
        raise UserError(f"the start model '{loaded.source}' has no instance decoder to fine-tune: start from one "
                        "that has (the demo, a *_lm model, a micro-sam finetuning checkpoint)")
    return {"model_state": sam, "decoder_state": dict(loaded.decoder_state)}, loaded.model_type[:5], \
        _start_label(model, loaded.source)


def _start_label(model: Any, source: str) -> str:
    """The start model as the provenance names it: a name, or a file's name with its sha256."""
    import hashlib

    if model is None or str(model) == "demo":
        from microsam_fiji.core.version import package_version

        return f"demo (micro-sam-fiji {package_version()}'s bundled vit_t demo model)"
    path = Path(str(source))
    if path.is_file():
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"{path.name} (sha256 {digest.hexdigest()[:16]}...)"
    return str(source)


# --- the run ----------------------------------------------------------------------------------------------------------

def _loaders(settings: dict, data: TrainingData):
    from micro_sam.training import default_sam_loader

    common = dict(raw_key=None, label_key=None, patch_shape=tuple(settings["patch_shape"]),
                  with_segmentation_decoder=True, with_channels=True, batch_size=settings["batch_size"],
                  num_workers=0, pin_memory=settings["device"] != "cpu")
    train = default_sam_loader(raw_paths=[p.image for p in data.train], label_paths=[p.labels for p in data.train],
                               n_samples=settings["iterations_per_epoch"], is_train=True, shuffle=True, **common)
    val = default_sam_loader(raw_paths=[p.image for p in data.val], label_paths=[p.labels for p in data.val],
                             n_samples=len(data.val), is_train=False, shuffle=False, **common)
    return train, val


def _train(settings: dict, model_type: str, data: TrainingData, start_path: Path, work: Path, monitor: Monitor,
           target: int | None, done_before: int) -> str:
    """Run micro-sam's ``train_sam``; how it ended: iterations, early stopping, time budget or cancelled."""
    from micro_sam.training import train_sam

    from microsam_fiji.core.micro_sam_compat import float32_training_on_cpu

    train_loader, val_loader = _loaders(settings, data)
    # micro-sam needs an iteration count: the target, or for a time budget more than it can reach
    iterations = (target - done_before) if target is not None else 10**7
    report("training: starting micro-sam's trainer", done_before, target)
    try:
        with float32_training_on_cpu(), monitor.watching(settings["iterations_per_epoch"]):
            train_sam(name=RUN_NAME, model_type=model_type, train_loader=train_loader, val_loader=val_loader,
                      n_iterations=iterations, early_stopping=settings["early_stopping"],
                      n_objects_per_batch=settings["n_objects_per_batch"], checkpoint_path=str(start_path),
                      with_segmentation_decoder=True, freeze=list(settings["freeze"]) or None,
                      device=settings["device"], lr=settings["lr"], n_sub_iteration=settings["n_sub_iteration"],
                      save_root=str(work), scheduler_class=monitor.scheduler_class(), pbar_signals=monitor,
                      peft_kwargs=_peft_kwargs(settings), verify_n_labels_in_loader=1, overwrite_training=True)
    except StopTraining:
        return "time budget"
    except Cancelled:
        return "cancelled"
    except KeyboardInterrupt:
        return "interrupted"
    except RuntimeError as err:
        if "Could not sample a valid batch" in str(err):
            raise UserError(f"micro-sam's trainer found no {settings['patch_shape'][0]}x{settings['patch_shape'][1]} "
                            "patch with at least 2 annotated objects: annotate more objects or give a larger "
                            "patch_shape") from None
        raise
    monitor.flush()
    if target is not None and monitor.iteration >= target:
        return "iterations"
    return "early stopping"


def _keep(work: Path, out: Path, record: dict, iteration: int, metric: float, improved: bool, monitor: Monitor,
          started: float) -> None:
    """At an epoch's end: torch_em's ``latest.pt`` (written by this process a moment ago, so unpickling it runs
    nothing foreign) as weights-only ``resume.pt``, and as the user's checkpoint when it validates best so far."""
    import torch

    from microsam_fiji.core.tiff_io import atomic_write

    saved = torch.load(work / "checkpoints" / RUN_NAME / "latest.pt", map_location="cpu", weights_only=False)
    state = {"model_state": {k[len("sam."):]: v for k, v in saved["model_state"].items() if k.startswith("sam.")},
             "decoder_state": dict(saved["decoder_state"])}
    del saved
    atomic_write(work / "resume.pt", lambda tmp: _torch_save(state, tmp))
    seconds = float(record.get("seconds_before") or 0.0) + time.monotonic() - started
    record["history"].append([iteration, metric])
    record.update(iterations=iteration, seconds=seconds, minutes=round(seconds / 60.0, 2))
    if improved:
        record["validation"]["best"] = metric
        record["validation"]["best_iteration"] = iteration
        record["written"] = True
        _write_checkpoint(out, state, record)
    _write_run(work, record)


def _torch_save(state: dict, path: str) -> None:
    import torch

    torch.save(state, path)


def _write_checkpoint(out: Path, state: dict | None, record: dict) -> None:
    """The user's checkpoint, atomically: micro-sam's two state dicts and the provenance (plain values), so that
    ``torch.load(weights_only=True)`` reads all of it. ``state`` None: the weights already in ``out``."""
    from microsam_fiji.core.tiff_io import atomic_write

    if state is None:
        from microsam_fiji.models.checkpoint import read_state

        state = read_state(out)
    payload = {"model_state": state["model_state"], "decoder_state": state["decoder_state"],
               KEY: _provenance(record)}
    atomic_write(out, lambda tmp: _torch_save(payload, tmp))


# --- provenance and the run record ------------------------------------------------------------------------------------

def _new_record(start_label: str, model_type: str, settings: dict, data: TrainingData, description: str | None,
                source: str | None) -> dict:
    return {"version": 1, "start_model": start_label, "model_type": model_type, "settings": settings,
            "data": data.describe(), "data_description": description, "data_source": source, "iterations": 0,
            "history": [], "validation": {"metric": VALIDATION_METRIC, "best": None}, "status": "in progress",
            "seconds_before": 0.0}


def _write_run(work: Path, record: dict) -> None:
    from microsam_fiji.core.tiff_io import atomic_write

    text = json.dumps(record, indent=1)
    atomic_write(work / "run.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _provenance(record: dict) -> dict:
    """The plain-valued record a checkpoint carries (see :mod:`.provenance`)."""
    from importlib.metadata import version

    from microsam_fiji.core.version import package_version

    data = record["data"]
    return {
        "tool": f"micro-sam-fiji {package_version()} (micro_sam.training.train_sam, micro-sam {version('micro_sam')})",
        "start_model": record["start_model"], "model_type": record["model_type"],
        "data": {"train": data["train"], "validation": data["validation"], "fingerprint": data["fingerprint"]},
        "data_description": record.get("data_description"), "data_source": record.get("data_source"),
        "settings": {k: v for k, v in record["settings"].items() if k != "channel" or v is not None},
        "iterations": int(record.get("iterations") or 0), "epochs": len(record["history"]),
        "minutes": float(record.get("minutes") or 0.0), "stopped": record.get("stopped"),
        "status": record.get("status"), "validation": dict(record["validation"]),
        "history": [list(h) for h in record["history"]],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# --- evaluation -------------------------------------------------------------------------------------------------------

def _msa(state: dict, model_type: str, data: TrainingData) -> float:
    """APG's mean segmentation accuracy (mSA over IoU 0.5..0.95, micro-sam's metric) on the validation images."""
    from elf.evaluation import mean_segmentation_accuracy

    from microsam_fiji.engines.segment import segment
    from microsam_fiji.models.backends import apply_backend
    from microsam_fiji.models.checkpoint import model_from_state

    model = model_from_state(state, model_type, "cpu", "fine-tuning", "fine-tuning")
    apply_backend(model, "torch")  # the weights change each run: no ONNX graph export for two uses
    scores = []
    for pair in data.val:
        labels = segment(pair.image.transpose(1, 2, 0), model, "apg")
        scores.append(float(mean_segmentation_accuracy(labels, pair.labels)))
    return round(float(np.mean(scores)), 4)
