"""Does the package compute what micro-sam computes? Its test output is micro-sam's own decoder output, and
every weight format is run through bioimageio.core and compared with it under the declared tolerance."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.models.package_config import INPUT_ID, OUTPUT_ID

# Reproducing the test outputs (micro-sam's own decoder maps, in 0..1). pytorch_state_dict and torchscript
# reproduce them exactly on CPU (measured on the built-in image); ONNX Runtime's kernels differ in the last bits
# (1e-4) and its antialiased downscaling (images over 1024 px) moves some pixels by one uint8 step; other devices
# (GPU) and another floating-point order of the preprocessing in other consumers can do the same.
TOLERANCE = {"absolute_tolerance": 2e-3, "relative_tolerance": 0.0, "mismatched_elements_per_million": 2000}


def micro_sam_maps(model, plane: np.ndarray) -> np.ndarray:
    """micro-sam's own decoder output for ``plane`` (what ``InstanceSegmentationWithDecoder.initialize`` sets).

    Args:
        model: The loaded checkpoint (:class:`microsam_fiji.models.model.Model`).
        plane: The test image's pixels.

    Returns:
        (3, Y, X) float32: foreground, center distances, boundary distances.
    """
    from microsam_fiji.engines.state import image_state

    state = image_state(model, plane)
    return np.stack(state.maps).astype(np.float32)


def predict_maps(descr, image: np.ndarray, weight_format: str) -> np.ndarray:
    """The package's tensor path on ``image`` through bioimageio.core, with its preprocessing.

    Args:
        descr: The package's description.
        image: (1, C, Y, X), the package's input layout.
        weight_format: Which of the package's weights to run.

    Returns:
        The output tensor, (1, 3, Y, X) float32.
    """
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import create_sample_for_model

    sample = create_sample_for_model(descr, inputs={INPUT_ID: image})
    with create_prediction_pipeline(descr, weight_format=weight_format,  # type: ignore[arg-type]  # a format name
                                    devices=["cpu"]) as pipeline:
        result = pipeline.predict_sample_without_blocking(sample)
    return np.asarray(result.members[OUTPUT_ID].data, dtype=np.float32)


def mismatch(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs difference, mismatched elements per million) under TOLERANCE."""
    diff = np.abs(actual.astype(np.float64) - expected)
    bad = diff > TOLERANCE["absolute_tolerance"] + TOLERANCE["relative_tolerance"] * np.abs(expected)
    return float(diff.max()), float(bad.mean() * 1e6)


def check_formats(descr, weights: dict, image: np.ndarray, expected: np.ndarray, skipped: dict[str, str],
                  say: Callable[[str], None]) -> dict[str, float]:
    """Run every weight format of ``descr`` on the test input and keep those that reproduce ``expected``.

    Args:
        descr: The package's description with every weight format in ``weights``.
        weights: Weight format -> its description entry; a format that fails is removed from it.
        image: The test input, (1, C, Y, X).
        expected: The test output: micro-sam's decoder maps, (1, 3, Y, X).
        skipped: Weight format -> why it is missing; a format that fails is added with the reason.
        say: Progress messages.

    Returns:
        Weight format -> largest difference to ``expected``, for every format run (the removed ones included).

    Raises:
        UserError: the pytorch_state_dict weights, which the others are made from, do not reproduce micro-sam.
    """
    diffs: dict[str, float] = {}
    for wf in list(weights):
        say(f"checking {wf} against micro-sam")
        try:
            actual = predict_maps(descr, image, wf)
        except Exception as err:  # noqa: BLE001 - a weight format's runtime failing leaves the package without it, said
            skipped[wf] = f"prediction failed: {one_line(err, 200)}"
            del weights[wf]
            continue
        diffs[wf], ppm = mismatch(actual, expected)
        if ppm > TOLERANCE["mismatched_elements_per_million"]:
            if wf == "pytorch_state_dict":
                raise UserError(f"the packaged network does not reproduce micro-sam's decoder output "
                                f"({ppm:.0f} ppm of values off by up to {diffs[wf]:.3g}): report this with the "
                                "checkpoint and test image")
            skipped[wf] = f"output differs from micro-sam's ({ppm:.0f} ppm beyond tolerance)"
            del weights[wf]
    return diffs


# --- evaluation ------------------------------------------------------------------------------------------------------
# Accuracy of the package's defaults against ground truth for the test image (``--test-labels``): micro-sam's
# mean segmentation accuracy (mSA), SA50 / SA75 and object counts, reported in the documentation.

def read_test_labels(test_labels, shape) -> np.ndarray | None:
    """Ground-truth instance labels for the test image.

    Args:
        test_labels: A path, an array, or None.
        shape: The test image's (Y, X).

    Returns:
        The labels, squeezed to (Y, X), or None when none were given.

    Raises:
        UserError: they are not integer labels of the test image's size.
    """
    if test_labels is None:
        return None
    if isinstance(test_labels, (str, os.PathLike)):
        from microsam_fiji.core.tiff_io import read_image

        truth = np.asarray(read_image(test_labels).data)
    else:
        truth = np.asarray(test_labels)
    truth = np.squeeze(truth)
    if truth.shape != tuple(shape) or not np.issubdtype(truth.dtype, np.integer):
        raise UserError(f"--test-labels: {truth.shape} {truth.dtype} labels for a {shape[0]}x{shape[1]} test "
                        "image: pass integer instance labels of the test image's size")
    return truth


def scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """mSA (micro-sam's evaluation metric, from elf) and object counts of ``labels`` against ``truth``.

    Args:
        labels: The instance labels segmented with the package's defaults.
        truth: The ground-truth instance labels.

    Returns:
        ``msa``, ``sa50``, ``sa75`` (0..1), ``n_predicted`` and ``n_true`` (object counts).
    """
    from elf.evaluation import mean_segmentation_accuracy

    msa, (sa50, _sa55, _sa60, _sa65, _sa70, sa75, *_rest) = mean_segmentation_accuracy(
        labels, truth, return_accuracies=True)
    return {"msa": float(msa), "sa50": float(sa50), "sa75": float(sa75),
            "n_predicted": int(len(np.unique(labels[labels > 0]))), "n_true": int(len(np.unique(truth[truth > 0])))}
