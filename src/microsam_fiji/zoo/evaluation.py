"""Accuracy of the package's defaults against ground truth for the test image (``--test-labels``): micro-sam's
mean segmentation accuracy (mSA), SA50 / SA75 and object counts, reported in the documentation."""
from __future__ import annotations

import os

import numpy as np

from microsam_fiji.core.errors import UserError


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
