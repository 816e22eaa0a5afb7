"""How a fine-tuned checkpoint was made, kept in the checkpoint itself and read back by ``export``.

:func:`microsam_fiji.finetune` writes ``{"model_state", "decoder_state", KEY: {...}}``: micro-sam reads the first
two and ignores the rest; ``KEY`` holds plain values only (strings, numbers, lists, dicts), so
``torch.load(weights_only=True)`` reads the whole file. ``export`` turns it into the Model Zoo's
``config.bioimageio.training`` fields, a ``training_data`` source where the user named one, and a "Training"
section of the model card, so that a published package says how it was trained."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KEY = "microsam_fiji_training"
# what micro-sam's trainer minimises and validates with (JointSamTrainer): lower is better
VALIDATION_METRIC = ("micro-sam's validation metric: dice loss of SAM's masks from box and point prompts plus a third "
                     "of the instance decoder's distance loss (lower is better)")


@dataclass
class ExportDefaults:
    """What ``export`` fills in from a fine-tuned checkpoint."""

    card_fields: dict[str, Any]  # bioimageio.spec TrainingDetails fields (and extra fields, allowed by the spec)
    data_source: str | None  # a Model Zoo dataset id, DOI or URL the user named at training, or None
    documentation: str  # a "Training" section for the model card ("" when the checkpoint has no provenance)


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance of a checkpoint written by :func:`microsam_fiji.finetune`, or None (another checkpoint, or
    a file that is no weights-only checkpoint: the exporter's own reader then says what is wrong with it).

    Read with ``torch.load(weights_only=True, mmap=True)``: no code runs, and the weights are not read into memory.

    Args:
        path: the checkpoint.

    Returns:
        The provenance dict or None."""
    import torch

    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not ours to judge here: the exporter reads the file next and names the problem
        return None
    found = state.get(KEY) if isinstance(state, dict) else None
    return found if isinstance(found, dict) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def export_defaults(path: str | os.PathLike) -> ExportDefaults:
    """The export fields of a fine-tuned checkpoint (empty ones for any other checkpoint).

    Args:
        path: the checkpoint to export.

    Returns:
        :class:`ExportDefaults`."""
    record = read_provenance(path)
    if record is None:
        return ExportDefaults({}, None, "")
    settings = record.get("settings") or {}
    data = record.get("data") or {}
    train, val = data.get("train") or {}, data.get("validation") or {}
    validation = record.get("validation") or {}
    fields: dict[str, Any] = {
        "training_preprocessing": ("each image scaled to 0..255 per channel as micro-sam does (uint8 RGB); "
                                   f"random {'x'.join(map(str, settings.get('patch_shape') or []))} patches "
                                   "with torch_em's default augmentations"),
        "training_batch_size": 1.0,
        "initial_learning_rate": _number(settings.get("lr")),
        "learning_rate_schedule": "ReduceLROnPlateau(mode=min, factor=0.9, patience=3 epochs), micro-sam's default",
        "loss_function": ("micro-sam's joint loss: dice + IoU regression of SAM's masks under iterative prompting, "
                          "and torch_em's DiceBasedDistanceLoss for the instance decoder"),
        "optimizer": "AdamW",
        "training_epochs": _number(record.get("epochs")),
        "training_duration": (round(record["minutes"] / 60, 4) if _number(record.get("minutes")) is not None
                              else None),
        # extra fields (bioimageio.spec's TrainingDetails allows them): what the standard ones cannot say
        "fine_tuned_with": record.get("tool"),
        "start_model": record.get("start_model"),
        "training_iterations": record.get("iterations"),
        "training_images": train.get("images"),
        "training_objects": train.get("objects"),
        "training_data_description": record.get("data_description"),
        "validation_images": val.get("images"),
        "validation_from": val.get("from"),
        "validation_metric": VALIDATION_METRIC,
        "validation_score": validation.get("best"),
        "validation_msa_start_model": validation.get("msa_before"),
        "validation_msa": validation.get("msa_after"),
        "frozen": settings.get("freeze") or [],
        "peft": settings.get("peft"),
        "stopped_by": record.get("stopped"),
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    return ExportDefaults(fields, record.get("data_source") or None, _documentation(record))


def _documentation(record: dict) -> str:
    settings = record.get("settings") or {}
    data = record.get("data") or {}
    train, val = data.get("train") or {}, data.get("validation") or {}
    validation = record.get("validation") or {}
    lines = [
        "",
        "## Training",
        f"Fine-tuned, SAM and its instance decoder together, with {record.get('tool', 'micro-sam-fiji')} from "
        f"`{record.get('start_model', '?')}`: {record.get('iterations', '?')} iterations in "
        f"{record.get('minutes', 0):.1f} minutes on {settings.get('device', '?')}, stopped by "
        f"{record.get('stopped', '?')}.",
        "",
        f"- Training data: {_count(train.get('images'), 'image')} with {train.get('objects', '?')} annotated objects "
        f"({', '.join(train.get('labels_from') or []) or 'labels'})"
        + (f"; {record['data_description']}" if record.get("data_description") else "")
        + (f"; source: {record['data_source']}" if record.get("data_source") else "") + ".",
        f"- Validation: {_count(val.get('images'), 'image')} ({_validation_from(val.get('from'))}); best "
        f"validation metric {_fmt(validation.get('best'))} ({VALIDATION_METRIC}).",
    ]
    if validation.get("msa_after") is not None:
        lines.append(f"- APG on the validation images, mean segmentation accuracy (mSA): start model "
                     f"{_fmt(validation.get('msa_before'))}, this model **{_fmt(validation.get('msa_after'))}**.")
    lines.append(f"- Settings: patch {'x'.join(map(str, settings.get('patch_shape') or []))}, learning rate "
                 f"{settings.get('lr')}, frozen: {', '.join(settings.get('freeze') or []) or 'nothing'}"
                 + (f", PEFT: {settings['peft']}" if settings.get("peft") else "")
                 + f", {_count(settings.get('n_objects_per_batch'), 'object')} and "
                 f"{_count(settings.get('n_sub_iteration'), 'round')} of iterative prompting per iteration, seed "
                 f"{settings.get('seed')}.")
    return "\n".join(lines) + "\n"


def _count(n: Any, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}" if isinstance(n, int) else f"? {noun}s"


def _validation_from(kind: str | None) -> str:
    return {"split": "held out from the annotated images", "given": "a separate validation set",
            "training images": "the training images themselves: this measures the fit, not generalisation"
            }.get(kind or "", kind or "?")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "n/a"
