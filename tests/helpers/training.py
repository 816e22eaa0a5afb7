"""Training data for the fine-tuning tests: the stardist test image (tests/data/img2d.tif) cut into four 256x256
crops with their ground truth, written as our outputs are named (x.tif + x_labels.tif or x_RoiSet.zip)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
SIDE = 256


def crops() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Four 256x256 crops of img2d.tif and their labels (each with ~25-40 nuclei)."""
    import tifffile

    image, mask = tifffile.imread(DATA / "img2d.tif"), tifffile.imread(DATA / "mask2d.tif")
    corners = [(y, x) for y in (0, SIDE) for x in (0, SIDE)]
    return ([image[y:y + SIDE, x:x + SIDE].copy() for y, x in corners],
            [mask[y:y + SIDE, x:x + SIDE].copy() for y, x in corners])


def write_folder(folder: Path, labels_as: str = "labels", label_folder: Path | None = None) -> Path:
    """``crop1.tif`` ... with ``crop1_labels.tif`` (``labels_as="labels"``), ``crop1_RoiSet.zip`` ("roiset") or
    ``crop1.tif`` in ``label_folder`` ("same name")."""
    import tifffile

    from microsam_fiji.core.tiff_io import write_labels
    from microsam_fiji.rois.roiset import write_roiset

    folder.mkdir(parents=True, exist_ok=True)
    label_folder = label_folder or folder
    label_folder.mkdir(parents=True, exist_ok=True)
    images, labels = crops()
    for i, (image, label) in enumerate(zip(images, labels), start=1):
        tifffile.imwrite(folder / f"crop{i}.tif", image)
        if labels_as == "labels":
            write_labels(label_folder / f"crop{i}_labels.tif", label)
        elif labels_as == "roiset":
            write_roiset(label_folder / f"crop{i}_RoiSet.zip", label)
        else:
            write_labels(label_folder / f"crop{i}.tif", label)
    return folder
