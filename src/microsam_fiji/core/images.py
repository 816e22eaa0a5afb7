"""What ImageJ users hand us (8/16/32-bit, RGB, z/t stacks) turned into the 2D planes micro-sam segments.

Axes follow ImageJ's names: X, Y, Z (slices), T (frames), C (channels), S (RGB samples, the last axis of an
RGB image). Without explicit axes: 2D is YX, a trailing axis of 3 is RGB (YXS), any other 3D is a stack (ZYX).
An image with channels (C) is segmented in one of them: ``channel=N``, 1-based as in ImageJ (default the first,
with a :class:`ChannelWarning` where there are several).

Value ranges: micro-sam scales every plane (each RGB channel) linearly from its min..max to 0..255 in float32
with an epsilon of 1e-7 (``micro_sam.util._to_image``). Where that arithmetic cannot hold the values (beyond
float32's range, a range below the epsilon, or differences float32 cannot resolve at the values' magnitude)
the plane is rescaled here, exactly, to 0..255 first and an :class:`ImageRescaledWarning` says so: the model
sees what micro-sam's scaling means to give it. A plane where a few extreme pixels would leave every other pixel
in one grey level (a hot pixel, a -3.4e38 "no data" marker) is refused: the result would be empty.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from microsam_fiji.core.errors import UserError

_STACK_AXES = "ZT"

_LEVELS = 255  # micro-sam's scaled range: 0..255, cast to uint8
_EPSILON = 1e-7  # added to the range by micro-sam's scaling
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# APG's default min_size in micro-sam (tests/test_images.py checks it): fewer pixels can never be an object
_FEWEST_OBJECT_PIXELS = 25
_ROWS_PER_BLOCK = 256  # the outlier check works in row blocks: no full-size float copy of large images


class ChannelWarning(UserWarning):
    """An image with several channels was segmented in its first, as none was chosen (``channel=N``)."""


class ImageRescaledWarning(UserWarning):
    """The image was rescaled to 0..255 before micro-sam, whose float32 scaling would have lost its values.

    Turn it into an error to refuse such images instead: ``warnings.simplefilter("error", ImageRescaledWarning)``.
    """


@dataclass(frozen=True)
class Planes:
    """``data``: (N, Y, X) grayscale or (N, Y, X, 3) RGB; ``stack_shape``: the leading shape N came from;
    ``stack_axes``: its ImageJ letters (``"Z"``, ``"T"``, ``"TZ"``, ``"ZT"``; ``""`` for one plane); ``channel``:
    the channel segmented (1-based) where the image has a C axis, else None."""

    data: np.ndarray
    stack_shape: tuple[int, ...]
    stack_axes: str = ""
    channel: int | None = None

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
        f"cannot tell the axes of a {len(shape)}D image of shape {shape}: pass axes (e.g. axes='TZYX', or "
        "'CZYX' for channels, with channel=N for the one to segment)"
    )


_DIM_LETTERS = {"x": "X", "y": "Y", "z": "Z", "t": "T", "time": "T", "c": "C", "channel": "C", "channels": "C",
                "s": "S", "rgb": "S", "sample": "S", "samples": "S",
                # pyimagej's names for an ImagePlus's axes (ij.py.from_java)
                "row": "Y", "col": "X", "pln": "Z", "ch": "C"}


def _named_axes(image) -> str | None:
    """ImageJ letters for an ``xarray.DataArray``'s ``dims`` (None when it has none, or names we do not know)."""
    dims = getattr(image, "dims", None)
    if not isinstance(dims, tuple) or not dims or not all(isinstance(d, str) for d in dims):
        return None
    letters = [_DIM_LETTERS.get(d.lower()) for d in dims]
    if any(letter is None for letter in letters):
        raise UserError(f"the image's dims {dims} are not axes micro-sam-fiji knows: name them from x, y, z, t, c "
                        "(or pass axes='...' in ImageJ letters XYZTCS)")
    return "".join(letters)  # type: ignore[arg-type]


def to_planes(image, axes: str | None = None, channel: int | None = None) -> Planes:
    """Check ``image`` and return it as a stack of 2D planes (see module doc for the axis rules).

    Args:
        image: a NumPy array or anything array-like; a torch tensor (one that requires grad too, detached) or an
            ``xarray.DataArray``, whose ``dims`` name the axes where ``axes`` does not (``('c', 'y', 'x')``).
        axes: ImageJ letters (XYZTCS) of ``image``'s axes (None: from ``dims``, else guessed from the shape).
        channel: the channel to segment, 1-based as in ImageJ, of an image with a C axis (None: the first, with a
            :class:`ChannelWarning` where there are several); an image without one has the one channel 1.

    Returns:
        The planes and the stack shape the labels take.

    Raises:
        UserError: for an image micro-sam cannot segment, or a channel out of range (the line names the range)."""
    arr, axes = _checked_array(image, axes)
    arr, axes, chosen = _one_channel(arr, axes, channel)
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
    if min(data.shape[1:3]) < 2:
        raise UserError(f"the image is {data.shape[2]} x {data.shape[1]} pixels, a line rather than a 2D image: "
                        "micro-sam segments 2D images of at least 2 pixels on each side (check the axes)")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise UserError(
            "the image contains NaN or infinite values: replace them first (Process > Math > Remove NaNs)"
        )
    return Planes(data=_fit_for_micro_sam(data, rgb), stack_shape=tuple(stack_shape),
                  stack_axes="".join(stack_axes), channel=chosen)


def _checked_array(image, axes: str | None) -> tuple[np.ndarray, str]:
    """``image`` as a NumPy array of a pixel type micro-sam takes, and its ImageJ axes (checked)."""
    if axes is None:
        axes = _named_axes(image)
    if hasattr(image, "detach") and callable(image.detach):  # a torch tensor: NumPy cannot take one that needs grad
        image = image.detach().cpu()
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
    return arr, axes


def _one_channel(arr: np.ndarray, axes: str, channel: int | None) -> tuple[np.ndarray, str, int | None]:
    """The channel to segment (see :func:`to_planes`): the array and its axes without C, and the channel (None
    where the image has no C axis)."""
    if channel is not None and (isinstance(channel, bool) or not float(channel).is_integer()):
        raise UserError(f"channel {channel!r} is no channel number: give 1, 2, ... (1-based, as in ImageJ)")
    n_channels = arr.shape[axes.index("C")] if "C" in axes else 1
    if channel is not None and not 1 <= int(channel) <= n_channels:
        valid = "1" if n_channels == 1 else f"1 to {n_channels}"
        raise UserError(f"channel {channel} is out of range: the image has {n_channels} channel"
                        f"{'s' if n_channels > 1 else ''} (valid: {valid}, 1-based as in ImageJ)")
    if "C" not in axes:
        return arr, axes, None
    if channel is None and n_channels > 1:
        warnings.warn(f"the image has {n_channels} channels: segmented channel 1 (choose another with channel=N, "
                      "--channel N)", ChannelWarning, stacklevel=4)
    chosen = 1 if channel is None else int(channel)
    return arr.take(chosen - 1, axis=axes.index("C")), axes.replace("C", ""), chosen


def intensity_image(image, axes: str | None = None, channel: int | None = None) -> np.ndarray:
    """The pixels to measure objects' intensities on: the segmented channel with its original values, shaped like
    the labels (stack axes in the image's order, then Y, X); an RGB image as the mean of its three samples (ImageJ's
    unweighted RGB conversion).

    Args:
        image, axes, channel: as for :func:`to_planes` (without its channel warning: segmenting gave it).

    Returns:
        The array (float64 for RGB, else the image's own pixel type)."""
    arr, axes = _checked_array(image, axes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChannelWarning)
        arr, axes, _ = _one_channel(arr, axes, channel)
    if "S" in axes:
        arr = arr.take(range(3), axis=axes.index("S")).mean(axis=axes.index("S"))
        axes = axes.replace("S", "")
    order = [a for a in axes if a in _STACK_AXES] + ["Y", "X"]
    return np.transpose(arr, [axes.index(a) for a in order])


def _fit_for_micro_sam(data: np.ndarray, rgb: bool) -> np.ndarray:
    """``data`` as micro-sam's scaling can take it: see the module doc (rescale or refuse)."""
    channels, problem = [], None
    for index in range(len(data)):
        for channel in (range(3) if rgb else [None]):
            values = data[index] if channel is None else data[index, ..., channel]
            lo, hi = _min_max(values)
            channels.append((index, channel, lo, hi))
            if lo == hi:
                continue  # constant: no objects, micro-sam's model is not run
            where = _where(index, len(data), channel)
            if values.dtype.itemsize > 1:  # 8-bit values keep one grey level each
                _refuse_flattening_outliers(values, lo, hi, where)
            reason = _scaling_problem(lo, hi)
            if problem is None and reason is not None:
                problem = where + reason
    if problem is None:
        return data
    # every plane and channel, so that all fit float32; micro-sam scales each on its own, so the others keep
    # their grey levels
    out = np.zeros(data.shape, dtype=np.float32)
    for index, channel, lo, hi in channels:
        if lo != hi:
            values = data[index] if channel is None else data[index, ..., channel]
            target = out[index] if channel is None else out[index, ..., channel]
            target[...] = _exact_levels(values, lo, hi)
    warnings.warn(f"{problem}: rescaled the image linearly to 0..255 first, as micro-sam's scaling means to",
                  ImageRescaledWarning, stacklevel=4)
    return out


def _where(index: int, n_planes: int, channel: int | None) -> str:
    parts = ([f"plane {index + 1} of {n_planes}"] if n_planes > 1 else []) + \
        ([f"{'RGB'[channel]} channel"] if channel is not None else [])
    return f"{', '.join(parts)}: " if parts else ""


def _min_max(values: np.ndarray):
    """Exact min and max: Python ints for integer pixels (int64 beyond float's 53 bits), floats otherwise."""
    lo, hi = values.min(), values.max()
    if np.issubdtype(values.dtype, np.integer):
        return int(lo), int(hi)
    return float(lo), float(hi)


def _text(value, exact: bool = False) -> str:
    if isinstance(value, int):
        return str(value)
    return repr(value) if exact else f"{value:.6g}"


def _scaling_problem(lo, hi) -> str | None:
    """Why micro-sam's float32 min..max scaling would mis-scale values from ``lo`` to ``hi``, or None."""
    span = float(hi - lo) if isinstance(lo, int) else 2 * (hi / 2 - lo / 2)  # halves: inf, not an overflow error
    largest = max(abs(lo), abs(hi))
    if largest >= _FLOAT32_MAX or span >= _FLOAT32_MAX:
        return (f"values from {_text(lo)} to {_text(hi)} overflow micro-sam's 32-bit scaling (largest "
                f"{_FLOAT32_MAX:.3g})")
    if span < _LEVELS * _EPSILON:
        return (f"values span only {span:.3g} ({_text(lo)} to {_text(hi)}), below the {_EPSILON:g} that "
                "micro-sam's scaling adds to the range")
    if float(np.spacing(np.float32(largest))) > span / _LEVELS:
        return (f"values from {_text(lo, exact=True)} to {_text(hi, exact=True)} differ by less than 32-bit "
                "floats resolve at that magnitude in micro-sam's scaling")
    return None


def _exact_levels(values: np.ndarray, lo, hi) -> np.ndarray:
    """(values - lo) / (hi - lo) * 255 without overflow or lost digits (what micro-sam's scaling means)."""
    if np.issubdtype(values.dtype, np.integer):
        # the difference to the minimum is exact in 64-bit unsigned arithmetic, even for int64 extremes
        offset = values.astype(np.int64 if values.dtype.kind == "i" else np.uint64).view(np.uint64) \
            - np.uint64(lo % 2 ** 64)
        return offset.astype(np.float64) * (_LEVELS / float(hi - lo))
    half_span = hi / 2 - lo / 2
    return (values.astype(np.float64) / 2 - lo / 2) * (_LEVELS / half_span)


def _levels(values: np.ndarray, lo, hi):
    """The uint8 grey levels micro-sam's scaling gives ``values``, by blocks of rows: (block, levels)."""
    for start in range(0, values.shape[0], _ROWS_PER_BLOCK):
        block = values[start:start + _ROWS_PER_BLOCK]
        yield block, np.clip(_exact_levels(block, lo, hi), 0, _LEVELS).astype(np.uint8)


def _refuse_flattening_outliers(values: np.ndarray, lo, hi, where: str) -> None:
    """Refuse a plane whose pixels, but for fewer than an object's worth (and at most 1%), fall into one grey level
    although their values differ: micro-sam's scaling flattens them and the result is empty whatever the thresholds."""
    counts = np.zeros(_LEVELS + 1, dtype=np.int64)
    for _, levels in _levels(values, lo, hi):
        counts += np.bincount(levels.ravel(), minlength=_LEVELS + 1)
    bulk = int(counts.argmax())
    n_outliers = values.size - int(counts[bulk])
    if n_outliers == 0 or n_outliers >= _FEWEST_OBJECT_PIXELS or 100 * n_outliers > values.size:
        return  # none, enough to be an object, or more than 1% of a tiny image: not a few outliers
    bulk_lo, bulk_hi, extreme = None, None, None
    for block, levels in _levels(values, lo, hi):
        inside = block[levels == bulk]
        if inside.size:
            block_lo, block_hi = _min_max(inside)
            bulk_lo = block_lo if bulk_lo is None else min(bulk_lo, block_lo)
            bulk_hi = block_hi if bulk_hi is None else max(bulk_hi, block_hi)
        outside = block[levels != bulk]
        if outside.size:
            far = _min_max(outside)[1 if bulk < _LEVELS / 2 else 0]
            extreme = far if extreme is None or abs(far) > abs(extreme) else extreme
    if bulk_lo == bulk_hi:
        return  # the bulk is truly one value (a background): nothing is lost
    raise UserError(
        f"{where}{n_outliers} pixel{'s' if n_outliers > 1 else ''} ({'e.g. ' if n_outliers > 1 else ''}"
        f"{_text(extreme)}) lie{'' if n_outliers > 1 else 's'} so far from the others ({_text(bulk_lo)} to "
        f"{_text(bulk_hi)}) that micro-sam's 0..255 scaling puts all the others in one grey level and finds nothing: "
        "remove them first (Process > Noise > Remove Outliers, or Process > Math > Min/Max)"
    )


def is_constant(plane: np.ndarray) -> bool:
    """A plane with one value has no objects to find; segmenting it returns empty labels without the model."""
    return bool(plane.min() == plane.max())
