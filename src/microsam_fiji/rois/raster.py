"""Which pixels an ImageJ 1.x area selection covers, as ``Roi.getMask()`` decides it, for many ROIs at once.

Polygons (traced, polygon, freehand; integer or sub-pixel) and composite shapes follow ``ij.process.
PolygonFiller`` (1.53t): scan rows, the crossings of the non-horizontal edges with the row at pixel-centre
height are sorted and filled pairwise (even-odd), from ``(int)(x + 0.5)`` of one crossing up to that of the
next. Composite shapes are filled the same way with all their sub-paths together, as ``ShapeRoi.getMask()``
does. Ovals follow ``OvalRoi.getMask()`` (pixel centres inside the ellipse of the bounds), rectangles fill
their bounds. All polygons of all ROIs go through one vectorised scan; the result is a list of pixels per ROI.
"""
from __future__ import annotations

import numpy as np

_NUDGE = 1e-8  # PolygonFiller shifts crossings right by this much so that exact ties round the same way


class PixelSpans:
    """Collects rows of pixels ``[x0, x1)`` per ROI index; ``pixels()`` returns (roi, y, x) arrays."""

    def __init__(self):
        self._polys: list[tuple[int, np.ndarray, np.ndarray, bool]] = []
        self._spans: list[np.ndarray] = []  # (k, 4): roi, y, x0, x1

    def add_polygon(self, roi: int, xs, ys, integer: bool) -> None:
        """One closed sub-path of ROI ``roi``; the sub-paths of one ROI are filled together, even-odd."""
        xs = np.asarray(xs, np.float64)
        ys = np.asarray(ys, np.float64)
        if xs.size >= 2:
            self._polys.append((roi, xs, ys, integer))

    def add_rect(self, roi: int, left: int, top: int, right: int, bottom: int) -> None:
        rows = np.arange(top, bottom)
        span = np.empty((rows.size, 4), np.int64)
        span[:, 0], span[:, 1], span[:, 2], span[:, 3] = roi, rows, left, right
        self._spans.append(span)

    def add_oval(self, roi: int, left: int, top: int, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            return
        a, b = width / 2.0, height / 2.0
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
        inside = ((xx - (a - 0.5)) ** 2 / (a * a) + (yy - (b - 0.5)) ** 2 / (b * b)) <= 1.0
        # each row of an ellipse is one run; record it as a span
        rows = np.flatnonzero(inside.any(axis=1))
        first = inside[rows].argmax(axis=1)
        count = inside[rows].sum(axis=1)
        span = np.stack([np.full(rows.size, roi), rows + top, first + left, first + count + left], axis=1)
        self._spans.append(span.astype(np.int64))

    def _polygon_spans(self) -> np.ndarray:
        if not self._polys:
            return np.zeros((0, 4), np.int64)
        roi = np.concatenate([np.full(p[1].size, p[0]) for p in self._polys])
        x1 = np.concatenate([p[1] for p in self._polys])
        y1f = np.concatenate([p[2] for p in self._polys])
        integer = np.concatenate([np.full(p[1].size, p[3]) for p in self._polys])
        # the next vertex of each vertex, closing every sub-path
        nxt = np.arange(1, x1.size + 1)
        ends = np.cumsum([p[1].size for p in self._polys]) - 1
        nxt[ends] = np.r_[0, ends[:-1] + 1]
        x2, y2f = x1[nxt], y1f[nxt]
        # integer polygons use their coordinates; float ones round y to the nearest row (Math.round)
        y1 = np.where(integer, y1f, np.floor(y1f + 0.5)).astype(np.int64)
        y2 = np.where(integer, y2f, np.floor(y2f + 0.5)).astype(np.int64)
        keep = y1 != y2
        roi, x1, x2, y1, y2, y1f, y2f = (a[keep] for a in (roi, x1, x2, y1, y2, y1f, y2f))
        swap = y1 > y2
        x1, x2 = np.where(swap, x2, x1), np.where(swap, x1, x2)
        y1, y2 = np.where(swap, y2, y1), np.where(swap, y1, y2)
        y1f, y2f = np.where(swap, y2f, y1f), np.where(swap, y1f, y2f)
        slope = (x2 - x1) / (y2f - y1f)
        x_first = x1 + (y1 - y1f + 0.5) * slope + _NUDGE

        rows_per_edge = y2 - y1
        edge = np.repeat(np.arange(y1.size), rows_per_edge)
        step = np.arange(edge.size) - np.repeat(np.cumsum(rows_per_edge) - rows_per_edge, rows_per_edge)
        row = y1[edge] + step
        cross = np.floor(x_first[edge] + step * slope[edge] + 0.5).astype(np.int64)
        owner = roi[edge]
        order = np.lexsort((cross, row, owner))
        owner, row, cross = owner[order], row[order], cross[order]
        # crossings pair up within each (roi, row): 1st with 2nd, 3rd with 4th, ...
        position = np.arange(owner.size)
        new_run = np.r_[True, (owner[1:] != owner[:-1]) | (row[1:] != row[:-1])]
        run_start = np.maximum.accumulate(np.where(new_run, position, 0))
        opening = np.flatnonzero((position[:-1] - run_start[:-1]) % 2 == 0)
        return np.stack([owner[opening], row[opening], cross[opening], cross[opening + 1]], axis=1)

    def pixels(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(roi, y, x) of every covered pixel inside the image, ROI after ROI in the order they were added."""
        spans = np.concatenate([self._polygon_spans(), *self._spans]) if self._spans else self._polygon_spans()
        spans = spans[(spans[:, 1] >= 0) & (spans[:, 1] < height)]
        spans = spans[np.argsort(spans[:, 0], kind="stable")]
        x0 = np.clip(spans[:, 2], 0, width)
        length = np.maximum(np.clip(spans[:, 3], 0, width) - x0, 0)
        total = int(length.sum())
        index = np.repeat(np.arange(spans.shape[0]), length)
        x = np.arange(total) - np.repeat(np.cumsum(length) - length, length) + x0[index]
        return spans[index, 0], spans[index, 1], x
