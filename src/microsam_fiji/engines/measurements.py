"""Per-object measurements of a segmentation: one row per object, computed by scikit-image's ``regionprops_table``.

Columns (in this order; those in brackets only where they apply):

* ``id``, ``name``: the label id and the ROI name of the object (``cell-0007``, as in the RoiSet);
* [``frame``]: its time point, 1-based (a stack with time);
* 3D objects (``volume=True``): ``voxels``, ``volume`` (voxels x the voxel's volume, in ``unit``³),
  ``first_slice``, ``last_slice`` (1-based, as ImageJ counts slices);
  2D objects: ``pixels``, ``area`` (in ``unit``²), [``slice``] (1-based, a z-stack);
* ``centroid_x``, ``centroid_y``, [``centroid_z``] (3D): the mean of its pixels' centres in calibrated units,
  a pixel's centre at (column + 0.5) x pixel width as ImageJ's Measure reports it (z likewise, with the voxel depth);
* ``bbox_x``, ``bbox_y``, ``bbox_width``, ``bbox_height``: its bounding box in pixels (x, y of its top-left pixel,
  0-based as ImageJ's pixel coordinates; ``makeRectangle(bbox_x, bbox_y, bbox_width, bbox_height)`` selects it);
* [``mean_intensity``]: the mean of its pixels in the segmented channel (original values; RGB: the mean of the
  three samples);
* [``score``]: APG's score (predicted IoU; for a 3D object the mean of its 2D pieces'), empty where there is none;
* ``unit``: the length unit of the calibrated columns (``pixel`` without calibration).

The voxel size: ``Calibration.pixel_width``/``pixel_height``/``pixel_depth`` (a missing depth counts as 1, as
ImageJ's default)."""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import intensity_image
from microsam_fiji.core.tiff_io import Calibration, atomic_write
from microsam_fiji.engines.segment import Segmentation
from microsam_fiji.rois.encode import roi_name

_LABEL_AXES = {2: "YX", 3: "ZYX", 4: "TZYX"}


@dataclass
class ObjectTable:
    """Measurements, one row per object: ``columns`` maps each column's name to its values (in object order);
    ``unit``: the length unit of the calibrated columns. :meth:`rows` gives them row by row (for ImageJ's
    ``ResultsTable``), :meth:`write_csv` writes them."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    unit: str = "pixel"

    @property
    def headings(self) -> list[str]:
        """The column names, in order."""
        return list(self.columns)

    def rows(self) -> list[list[Any]]:
        """One list of values per object, in :attr:`headings` order (None where a value is missing).

        Returns:
            The rows."""
        return [list(row) for row in zip(*self.columns.values())]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def csv_text(self) -> str:
        """The table as CSV text: a heading row, then one row per object (an empty cell where a value is missing).

        Returns:
            The text."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(self.headings)
        writer.writerows([["" if v is None else v for v in row] for row in self.rows()])
        return buffer.getvalue()

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write :meth:`csv_text` to ``path`` (UTF-8, atomically).

        Args:
            path: the file.

        Returns:
            The path written."""
        text = self.csv_text()
        return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def measure_labels(labels: np.ndarray, axes: str | None = None, intensity: np.ndarray | None = None,
                   calibration: Calibration | None = None, scores: dict[int, float] | None = None,
                   volume: bool = False, name_prefix: str = "cell") -> ObjectTable:
    """Measure every object of ``labels`` (see the module doc for the columns).

    Args:
        labels: instance labels (0 = background), ids unique across the stack: (Y, X), (Z, Y, X), (T, Z, Y, X), ...
        axes: the labels' ImageJ axes (``"ZYX"``, ``"TYX"``, ``"TZYX"``; None: by dimension, ``YX``/``ZYX``/``TZYX``).
        intensity: the segmented channel's pixels, shaped like ``labels`` (None: no ``mean_intensity`` column).
        calibration: the pixel size and unit (None: pixels).
        scores: score by id (None or empty: no ``score`` column).
        volume: whether the objects are 3D (merged across z): ``voxels``/``volume`` instead of ``pixels``/``area``.
        name_prefix: the ROI names' prefix.

    Returns:
        The :class:`ObjectTable`, rows in id order.

    Raises:
        UserError: for axes or an intensity image that do not fit the labels."""
    labels = np.asarray(labels)
    axes = (axes or _LABEL_AXES.get(labels.ndim, "")).upper()
    if len(axes) != labels.ndim or not axes.endswith("YX") or set(axes) - set("TZYX") or len(set(axes)) != len(axes):
        raise UserError(f"labels of shape {labels.shape} do not fit axes '{axes}': give their axes, e.g. 'TZYX'")
    if volume and "Z" not in axes:
        raise UserError(f"3D objects need labels with a z axis, got axes '{axes}'")
    if intensity is not None and np.shape(intensity) != labels.shape:
        raise UserError(f"the intensity image {np.shape(intensity)} does not fit the labels {labels.shape}: give "
                        "the segmented channel's pixels, with the axes the image was segmented with")
    cal = calibration or Calibration()
    depth = cal.pixel_depth if cal.pixel_depth else 1.0
    size = {"X": cal.pixel_width, "Y": cal.pixel_height, "Z": depth if volume else 1.0, "T": 1.0}
    table = _regionprops(labels, axes, None if intensity is None else np.asarray(intensity),
                         {a: size[a] for a in axes})
    ids = table["label"].tolist()

    def centroid(a: str) -> list[float]:  # skimage's centroid is index x spacing: the pixel's centre is +0.5
        return (table[f"centroid-{a}"] + 0.5 * size[a]).tolist()

    def bbox(a: str, end: bool = False) -> list[int]:
        return table[f"{'end' if end else 'start'}-{a}"].tolist()

    top = int(labels.max()) if labels.size else 0
    width = max(4, len(str(top)))  # as rois.encode.labels_to_rois names them
    columns: dict[str, list[Any]] = {"id": ids, "name": [roi_name(name_prefix, i, width) for i in ids]}
    if "T" in axes:
        columns["frame"] = [t + 1 for t in bbox("T")]
    if volume:
        columns["voxels"] = table["num_pixels"].tolist()
        columns["volume"] = table["area"].tolist()
        columns["first_slice"] = [z + 1 for z in bbox("Z")]
        columns["last_slice"] = bbox("Z", end=True)  # exclusive 0-based end = inclusive 1-based last
    else:
        columns["pixels"] = table["num_pixels"].tolist()
        columns["area"] = table["area"].tolist()
        if "Z" in axes:
            columns["slice"] = [z + 1 for z in bbox("Z")]
    columns["centroid_x"] = centroid("X")
    columns["centroid_y"] = centroid("Y")
    if volume:
        columns["centroid_z"] = centroid("Z")
    columns["bbox_x"] = bbox("X")
    columns["bbox_y"] = bbox("Y")
    columns["bbox_width"] = [b - a for a, b in zip(bbox("X"), bbox("X", end=True))]
    columns["bbox_height"] = [b - a for a, b in zip(bbox("Y"), bbox("Y", end=True))]
    if intensity is not None:
        columns["mean_intensity"] = table["intensity_mean"].tolist()
    if scores:
        columns["score"] = [scores.get(i) for i in ids]
    columns["unit"] = [cal.unit] * len(ids)
    return ObjectTable(columns=columns, unit=cal.unit)


def _regionprops(labels: np.ndarray, axes: str, intensity: np.ndarray | None, spacing: dict[str, float]
                 ) -> dict[str, np.ndarray]:
    """``regionprops_table``'s columns by axis letter (``centroid-X``, ``start-Z``, ``end-Z``: the bounding box,
    end exclusive), rows in id order. scikit-image measures 2D and 3D images: a 4D stack (ids unique across it, so
    no object spans two time points) is measured a time point at a time."""
    from skimage.measure import regionprops_table

    if labels.ndim == 4:
        t = axes.index("T")
        rest = axes.replace("T", "")
        frames = [_regionprops(np.take(labels, i, axis=t), rest,
                               None if intensity is None else np.take(intensity, i, axis=t), spacing)
                  for i in range(labels.shape[t])]
        for i, frame in enumerate(frames):
            frame["centroid-T"] = np.full(len(frame["label"]), float(i))
            frame["start-T"] = np.full(len(frame["label"]), i)
            frame["end-T"] = frame["start-T"] + 1
        merged = {key: np.concatenate([frame[key] for frame in frames]) for key in frames[0]}
        order = np.argsort(merged["label"], kind="stable")
        return {key: values[order] for key, values in merged.items()}
    properties = ["label", "num_pixels", "area", "centroid", "bbox"] + ([] if intensity is None else ["intensity_mean"])
    table = regionprops_table(labels, intensity_image=intensity, properties=properties,
                              spacing=tuple(spacing[a] for a in axes))
    out = {key: np.asarray(table[key]) for key in ("label", "num_pixels", "area", "intensity_mean") if key in table}
    for i, a in enumerate(axes):
        out[f"centroid-{a}"] = np.asarray(table[f"centroid-{i}"])
        out[f"start-{a}"] = np.asarray(table[f"bbox-{i}"])
        out[f"end-{a}"] = np.asarray(table[f"bbox-{i + len(axes)}"])
    return out


def measure_objects(result: Segmentation, image, calibration: Calibration | None = None, axes: str | None = None,
                    name_prefix: str = "cell") -> ObjectTable:
    """Measure the objects of a segmentation on the image it came from (see the module doc for the columns).

    Args:
        result: what :func:`~microsam_fiji.engines.segment.segment_with_scores` returned for ``image``.
        image: the image segmented (its segmented channel is measured).
        calibration: the pixel size and unit (``read_image(path).calibration``; None: pixels).
        axes: the axes given to the segmentation, where it was given some.
        name_prefix: the ROI names' prefix.

    Returns:
        The :class:`ObjectTable`.

    Raises:
        UserError: where ``image`` or ``axes`` are not what was segmented."""
    intensity = intensity_image(image, axes, result.channel)
    return measure_labels(result.labels, result.axes or None, intensity, calibration, result.scores,
                          volume=result.volume, name_prefix=name_prefix)
