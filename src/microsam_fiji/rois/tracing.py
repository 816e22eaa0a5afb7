"""Outlines of every object of a 2D label image along pixel edges, for all labels at once (numpy only).

Every exposed side of an object pixel is one directed edge, walked with the object on its right (on screen,
y down): outer outlines run clockwise, hole outlines counter-clockwise. Each edge has exactly one successor,
decided by the two pixels ahead of its end point; where two pixels of one object touch only at a corner the
walk turns into the diagonal neighbour, so diagonally connected parts share one outline (ImageJ's 8-connected
traced selections do the same). The successor map is a permutation whose cycles are the outlines; cycles and
the order along them are found by pointer doubling, so the work is a few dozen numpy passes over the edges
however many objects there are.

Because every boundary edge lies on exactly one outline with the object on the same side, filling the outlines
by pixel centres (even-odd or non-zero, as ImageJ's PolygonFiller and ShapeRoi do) gives back exactly the
object's pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# side s of a pixel is walked in direction s: top -> east, right -> south, bottom -> west, left -> north
_FORWARD = np.array([(0, 1), (1, 0), (0, -1), (-1, 0)])  # (dy, dx) of heading s
_LEFT = np.array([(-1, 0), (0, 1), (1, 0), (0, -1)])  # (dy, dx) to the left of heading s
_START = np.array([(0, 0), (0, 1), (1, 1), (1, 0)])  # (dy, dx) of the start corner of side s


@dataclass
class Outlines:
    """Closed outlines on pixel corners, grouped by label.

    ``vertices`` (V, 2) holds (x, y) corner points, outline after outline; outline k spans
    ``vertices[starts[k]:starts[k + 1]]``, belongs to ``labels[k]`` and is a hole when ``holes[k]``.
    Outlines are sorted by label, then by their first pixel in raster order (outer outlines before holes)."""

    vertices: np.ndarray
    starts: np.ndarray
    labels: np.ndarray
    holes: np.ndarray


def trace_outlines(labels: np.ndarray) -> Outlines:
    """Pixel-edge outlines of every non-zero label of a 2D integer image."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected a 2D label image, got shape {labels.shape}")
    height, width = labels.shape
    padded = np.pad(labels, 1)
    inner = padded[1:-1, 1:-1]
    # whether each pixel differs from its neighbour above / to the left (and, shifted, below / to the right)
    differs_v = padded[1:, 1:-1] != padded[:-1, 1:-1]  # (H+1, W): row y compares pixel rows y-1 and y
    differs_h = padded[1:-1, 1:] != padded[1:-1, :-1]  # (H, W+1)
    differs = [differs_v[:-1], differs_h[:, 1:], differs_v[1:], differs_h[:, :-1]]  # across side s
    obj = inner != 0
    # exposed[s] padded by one False pixel all round, so that neighbours are slices
    exposed = np.zeros((4, height + 2, width + 2), bool)
    for s in range(4):
        np.logical_and(obj, differs[s], out=exposed[s, 1:-1, 1:-1])

    def at(s, dy, dx):
        return exposed[s, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]

    # An edge (pixel side s, walked in direction s) is a vertex of the polygon when the walk turns onto it,
    # i.e. unless the pixel behind is ours and has the same side exposed. A straight run of edges ends where
    # the pixel ahead is not ours or has that side covered. Side s + 1 faces ahead, side s - 1 behind.
    corner = np.empty((height, width, 4), bool)
    run_end_pix = []
    # sorting by column with a stable (radix) sort turns raster order into column order
    column_key = np.uint16 if width <= np.iinfo(np.uint16).max else np.int64
    for s in range(4):
        fy, fx = _FORWARD[s]
        edge = at(s, 0, 0)
        starts = edge & ~(~differs[(s - 1) % 4] & at(s, -fy, -fx))
        ends = edge & ~(~differs[(s + 1) % 4] & at(s, fy, fx))
        corner[..., s] = starts
        end_pix = np.flatnonzero(ends)
        if s in (1, 3):  # vertical runs: starts and ends alternate down each column; pair them there
            start_pix = np.flatnonzero(starts)
            by_column_s = np.argsort((start_pix % width).astype(column_key), kind="stable")
            by_column_e = np.argsort((end_pix % width).astype(column_key), kind="stable")
            paired = np.empty_like(end_pix)
            paired[by_column_s] = end_pix[by_column_e]
            end_pix = paired
        run_end_pix.append(end_pix)  # horizontal runs alternate along each row, i.e. in raster order
    ids = np.flatnonzero(corner)  # sorted: pixel in raster order, then side
    if ids.size == 0:
        empty = np.zeros(0, np.int64)
        return Outlines(np.zeros((0, 2), np.int64), np.zeros(1, np.int64), empty, np.zeros(0, bool))
    side = ids & 3
    end = np.empty(ids.size, np.int64)
    for s in range(4):
        end[side == s] = run_end_pix[s]

    # after a run the walk turns left into the ahead-left pixel when it is ours (where two pixels of the
    # object touch only at a corner this joins them), otherwise right around the run's last pixel
    ey, ex = np.divmod(end, width)
    own = inner.ravel()[ids >> 2]
    al_y = ey + _FORWARD[side, 0] + _LEFT[side, 0]
    al_x = ex + _FORWARD[side, 1] + _LEFT[side, 1]
    left_turn = padded[al_y + 1, al_x + 1] == own
    next_id = np.where(left_turn, ((al_y * width + al_x) << 2) | ((side - 1) & 3), (end << 2) | ((side + 1) & 3))
    nxt = np.searchsorted(ids, next_id)

    first = _cycle_minimum(nxt)  # smallest index = raster-first edge of the outline
    rank = _distance_to_end(nxt, first)
    roots = np.flatnonzero(first == np.arange(ids.size))
    # the raster-first edge of an outer outline is a pixel's top side; of a hole outline, a bottom side
    root_labels = own[roots]
    root_order = np.lexsort((roots, root_labels))  # outlines by label, then raster position
    cycle_of_root = np.empty(ids.size, np.int64)
    cycle_of_root[roots[root_order]] = np.arange(roots.size)
    cycle = cycle_of_root[first]
    length = np.bincount(cycle, minlength=roots.size)
    starts = np.r_[0, np.cumsum(length)]
    place = starts[cycle] + length[cycle] - 1 - rank
    pix = ids >> 2
    vertices = np.empty((ids.size, 2), np.int64)
    vertices[place, 0] = pix % width + _START[side, 1]
    vertices[place, 1] = pix // width + _START[side, 0]
    ordered_roots = roots[root_order]
    return Outlines(vertices, starts, root_labels[root_order], side[ordered_roots] == 2)


def _cycle_minimum(nxt: np.ndarray) -> np.ndarray:
    """Smallest index on each element's cycle of the permutation ``nxt``, by pointer doubling."""
    low = np.arange(nxt.size)
    jump = nxt.copy()
    while True:
        new = np.minimum(low, low[jump])
        if np.array_equal(new, low):
            return low
        low = new
        jump = jump[jump]


def _distance_to_end(nxt: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Steps from each element to the last element of its cycle (the one whose successor is ``start``)."""
    last = nxt == start[nxt]
    dist = (~last).astype(np.int64)
    jump = np.where(last, np.arange(nxt.size), nxt)
    while True:
        ahead = jump[jump]
        if np.array_equal(ahead, jump):
            return dist
        dist += dist[jump]
        jump = ahead
