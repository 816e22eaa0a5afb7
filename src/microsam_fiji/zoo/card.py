"""The package's model card: what it cites (μSAM, SAM, MobileSAM for vit_t, the APG paper, the publisher's own
entries) and the model-card fields of ``config.bioimageio`` that bioimageio.spec 0.5.12 offers (architecture,
task, parameter count, measured inference time, the evaluation on the test image, training details)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.zoo.reproduction import TOLERANCE

MICRO_SAM_DOI = "10.1038/s41592-024-02580-4"
SAM_DOI = "10.48550/arXiv.2304.02643"
MOBILE_SAM_URL = "https://arxiv.org/abs/2306.14289"
# micro-sam's README: "If you use automatic prompt generation (APG), please also cite our APG paper" (this URL)
APG_PAPER_URL = "https://openreview.net/forum?id=xFO3DFZN45"
APG_PAPER_TEXT = "Archit et al. Revisiting foundation models for cell instance segmentation. MIDL (2026)"
MICRO_SAM_DOC = "https://computational-cell-analytics.github.io/micro-sam/micro_sam.html"
# what --training accepts -> bioimageio.spec's TrainingDetails field
TRAINING_KEYS = {"epochs": "training_epochs", "batch_size": "training_batch_size",
                 "learning_rate": "initial_learning_rate", "schedule": "learning_rate_schedule",
                 "loss": "loss_function", "optimizer": "optimizer", "regularization": "regularization",
                 "hours": "training_duration", "preprocessing": "training_preprocessing"}
NUMERIC_TRAINING = {"training_epochs", "training_batch_size", "initial_learning_rate", "training_duration"}


def citations(model_type: str, extra: Sequence[str] = ()) -> list:
    """The package's ``cite`` entries: μSAM, Segment Anything, MobileSAM (vit_t only), the APG paper, then
    the publisher's ``extra`` entries (see :func:`parse_citation`).

    Args:
        model_type: The SAM encoder type.
        extra: ``--cite`` values.

    Returns:
        bioimageio ``CiteEntry`` objects.
    """
    from bioimageio.spec.model import v0_5 as spec

    cite = [spec.CiteEntry(text="Archit et al. Segment Anything for Microscopy. Nature Methods 22, 579-591 (2025)",
                           doi=spec.Doi(MICRO_SAM_DOI)),
            spec.CiteEntry(text="Kirillov et al. Segment Anything. ICCV (2023)", doi=spec.Doi(SAM_DOI))]
    if model_type.startswith("vit_t"):
        cite.append(spec.CiteEntry(text="Zhang et al. Faster Segment Anything: Towards Lightweight SAM for Mobile "
                                        "Applications (MobileSAM). arXiv:2306.14289 (2023)",
                                   url=spec.HttpUrl(MOBILE_SAM_URL)))
    cite.append(spec.CiteEntry(text=APG_PAPER_TEXT, url=spec.HttpUrl(APG_PAPER_URL)))
    return cite + [parse_citation(text) for text in extra]


def parse_citation(text: str):
    """A ``CiteEntry`` from ``"TEXT; doi=10.x/y"`` or ``"TEXT; url=https://..."``; a UserError otherwise."""
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import ValidationError

    body, _, ref = text.rpartition(";")
    key, _, value = ref.strip().partition("=")
    hint = "use 'TEXT; doi=10.xxxx/yyyy' or 'TEXT; url=https://...'"
    if not body.strip() or key.strip() not in ("doi", "url") or not value.strip():
        raise UserError(f"--cite {text!r}: {hint}")
    try:
        ref_field = {"doi": spec.Doi(value.strip())} if key.strip() == "doi" else {"url": spec.HttpUrl(value.strip())}
        return spec.CiteEntry(text=body.strip(), **ref_field)
    except (ValidationError, ValueError):
        raise UserError(f"--cite {text!r}: the {key.strip()} is not valid: {hint}") from None


def training_details(text: str | None) -> dict[str, Any]:
    """bioimageio.spec ``TrainingDetails`` fields from ``"epochs=100; batch_size=2; learning_rate=1e-5;
    optimizer=AdamW; loss=...; hours=16; preprocessing=..."`` (see ``TRAINING_KEYS``); {} for None."""
    fields: dict[str, Any] = {}
    for part in [p.strip() for p in (text or "").split(";") if p.strip()]:
        key, sep, value = part.partition("=")
        name = TRAINING_KEYS.get(key.strip())
        if not sep or name is None or not value.strip():
            raise UserError(f"--training {text!r}: use KEY=VALUE parts separated by ';', keys: "
                            f"{', '.join(TRAINING_KEYS)}")
        try:
            fields[name] = float(value) if name in NUMERIC_TRAINING else value.strip()
        except ValueError:
            raise UserError(f"--training: {key.strip()}={value.strip()!r} is not a number") from None
    return fields


def evaluation(scores: Mapping[str, float] | None, dataset: tuple[str, str] | None):
    """The Model Zoo ``Evaluation`` of the package's defaults on the test image.

    Args:
        scores: Accuracy against the test image's ground truth (``--test-labels``), or None.
        dataset: (Model Zoo dataset id, its URL) of the dataset the test image and labels come from, or None.

    Returns:
        The evaluation, or None without scores or without such a dataset: the spec's ``Evaluation`` names a Model
        Zoo dataset and its source, which a local test image (or the built-in crop) has not; the scores then stay in
        the documentation's Validation section.
    """
    from bioimageio.spec.model import v0_5 as spec

    if scores is None or dataset is None:
        return None
    dataset_id, source = dataset
    return spec.Evaluation(
        dataset_id=spec.DatasetId(dataset_id), dataset_source=spec.HttpUrl(source),
        dataset_role="unknown", sample_count=1, evaluation_factors=["overall"],
        evaluation_factors_long=["the export's test image"],
        metrics=["mSA", "SA50", "SA75", "objects", "true objects"],
        metrics_long=["micro-sam's mean segmentation accuracy over IoU thresholds 0.5..0.95",
                      "segmentation accuracy at IoU 0.5", "segmentation accuracy at IoU 0.75",
                      "objects found with the package's defaults", "objects in the ground truth"],
        results=[[round(scores["msa"], 4)], [round(scores["sa50"], 4)], [round(scores["sa75"], 4)],
                 [int(scores["n_predicted"])], [int(scores["n_true"])]],
        results_summary="One image is no benchmark: measure on your own annotated images.")


def bioimageio_config(*, model_type: str, parameter_count: int | None = None, seconds: float | None = None,
                      shape=None, scores=None, evaluation_dataset=None, training: Mapping | None = None):
    """``config.bioimageio``: the reproduction tolerance and the model-card fields export knows.

    Args:
        model_type: The SAM encoder type.
        parameter_count: Parameters of the packaged network.
        seconds: Measured time of one micro-sam decoder pass on the test image (CPU), or None.
        shape: The test image's shape (for the inference time's wording).
        scores: :func:`microsam_fiji.zoo.evaluation.scores` or None.
        evaluation_dataset: (Model Zoo dataset id, URL) the test image comes from, or None (see
            :func:`evaluation`: without one, no ``Evaluation``).
        training: ``TrainingDetails`` fields (see :func:`training_details`).

    Returns:
        A ``BioimageioConfig``.
    """
    import platform

    from bioimageio.spec.model import v0_5 as spec

    found = evaluation(scores, evaluation_dataset)
    timing = (f"{seconds:.1f} s per image on CPU ({platform.processor() or platform.machine()}), "
              f"{shape[0]}x{shape[1]} px test image (the encoder always runs at 1024x1024)"
              if seconds is not None and shape is not None else None)
    return spec.BioimageioConfig(
        reproducibility_tolerance=[spec.ReproducibilityTolerance(**TOLERANCE)],  # type: ignore[arg-type]
        architecture_type=f"SAM {model_type[:5]} ViT + UNETR",
        architecture_description=("Segment Anything image encoder (micro-sam finetuned) with micro-sam's UNETR "
                                  "instance decoder: foreground, center and boundary distance maps; SAM's prompt "
                                  "encoder and mask decoder (attached) turn them into instances (APG)"),
        task="instance segmentation", model_parameter_count=parameter_count, inference_time=timing,
        evaluations=[found] if found is not None else [],
        training=spec.TrainingDetails(**dict(training or {})))


# --- cover -----------------------------------------------------------------------------------------------------------
# The package's cover image, drawn from the test image and the objects micro-sam found in it.

# the Model Zoo's rules for covers (bioimage.io upload guidelines)
COVER_MAX_BYTES = 500 * 1024
COVER_PANEL = 256  # pixels per side of each of the cover's two square panels (2:1)
OUTLINE_COLOR = (255, 220, 0)


def write_cover(path: Path, plane: np.ndarray, labels: np.ndarray) -> Path:
    """The test image and, beside it, its objects outlined: two square panels (the image's central square,
    scaled to COVER_PANEL pixels), 2:1 and well under 500 KB, as the Model Zoo asks of covers.

    Args:
        path: The PNG file to write.
        plane: The test image's pixels.
        labels: The instance labels segmented in it.

    Returns:
        ``path``.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from microsam_fiji.core.micro_sam_compat import to_image

    rgb = to_image(plane)  # the uint8 view micro-sam segments
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    size = (COVER_PANEL, COVER_PANEL)
    image = Image.fromarray(rgb[y0:y0 + side, x0:x0 + side]).resize(size, Image.Resampling.LANCZOS)
    # outlines drawn at the cover's resolution, from the labels scaled there: downscaling drawn outlines would
    # drop some of their pixels and leave them open
    small = np.asarray(Image.fromarray(labels[y0:y0 + side, x0:x0 + side].astype(np.int32)).resize(
        size, Image.Resampling.NEAREST))
    outlined = np.asarray(image).copy()
    outlined[find_boundaries(small, mode="inner")] = OUTLINE_COLOR
    panels = [image, Image.fromarray(outlined)]
    cover = Image.new("RGB", (2 * COVER_PANEL, COVER_PANEL))
    for i, panel in enumerate(panels):
        cover.paste(panel, (i * COVER_PANEL, 0))
    cover.save(path, optimize=True)
    return path
