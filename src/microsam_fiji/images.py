"""What ImageJ users hand us (8/16/32-bit, RGB, z/t stacks) turned into the 2D planes micro-sam segments.

Axes follow ImageJ's names: X, Y, Z (slices), T (frames), C (channels), S (RGB samples, the last axis of an
RGB image). Without explicit axes: 2D is YX, a trailing axis of 3 is RGB (YXS), any other 3D is a stack (ZYX).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError

_STACK_AXES = "ZT"


@dataclass(frozen=True)
class Planes:
    """``data``: (N, Y, X) grayscale or (N, Y, X, 3) RGB; ``stack_shape``: the leading shape N came from."""

    data: np.ndarray
    stack_shape: tuple[int, ...]

    @property
    def label_shape(self) -> tuple[int, ...]:
        return self.stack_shape + self.data.shape[1:3]


def guess_axes(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "YXS" if shape[-1] == 3 else "ZYX"
    if len(shape) == 4 and shape[-1] == 3:
        return "ZYXS"
    raise UserError(
        f"cannot tell the axes of a {len(shape)}D image of shape {shape}: pass axes (e.g. axes='TZYX'); "
        "for several channels split them first (Image > Color > Split Channels) and segment one"
    )


def to_planes(image, axes: str | None = None) -> Planes:
    """Check ``image`` and return it as a stack of 2D planes (see module doc for the axis rules)."""
    arr = np.asarray(image)
    if arr.size == 0:
        raise UserError(f"the image is empty (shape {arr.shape}): open or pass an image with pixels")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UserError(f"unsupported pixel type {arr.dtype}: use 8-, 16- or 32-bit grayscale or RGB")
    axes = (axes or guess_axes(arr.shape)).upper()
    if len(axes) != arr.ndim or len(set(axes)) != len(axes) or set(axes) - set("XYZTCS"):
        raise UserError(f"axes '{axes}' do not fit an image of shape {arr.shape}: use one letter of XYZTCS per axis")
    if "Y" not in axes or "X" not in axes:
        raise UserError(f"axes '{axes}' need both Y and X")
    if "C" in axes:
        n_channels = arr.shape[axes.index("C")]
        if n_channels != 1:
            raise UserError(
                f"the image has {n_channels} channels: segment one channel (Image > Color > Split Channels) "
                "or convert it to RGB (Image > Type > RGB Color)"
            )
        arr = arr.take(0, axis=axes.index("C"))
        axes = axes.replace("C", "")
    rgb = "S" in axes
    if rgb and arr.shape[axes.index("S")] not in (3, 4):
        raise UserError(f"an RGB axis S must have 3 samples, got {arr.shape[axes.index('S')]}")
    stack_axes = [a for a in axes if a in _STACK_AXES]
    order = stack_axes + ["Y", "X"] + (["S"] if rgb else [])
    arr = np.transpose(arr, [axes.index(a) for a in order])
    stack_shape = arr.shape[: len(stack_axes)]
    if rgb:
        arr = arr[..., :3]  # drop alpha
    data = arr.reshape((-1,) + arr.shape[len(stack_axes):])
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise UserError(
            "the image contains NaN or infinite values: replace them first (Process > Math > Remove NaNs)"
        )
    return Planes(data=data, stack_shape=tuple(stack_shape))


def is_constant(plane: np.ndarray) -> bool:
    """A plane with one value has no objects to find; segmenting it returns empty labels without the model."""
    return bool(plane.min() == plane.max())
