"""Pixels handed over by the ImageJ plugin as one raw file (see ``fiji-plugin/.../Pixels.java`` for the layout):
planes in ImageJ's stack order (channel fastest, then slice, then frame), little-endian, RGB as three bytes per
pixel. :func:`read_raw_image` returns what :func:`microsam_fiji.imagej.imageplus.from_imageplus` returns for the
same ImagePlus in process, so both transports segment identical arrays."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import Calibration, LoadedImage

_DTYPES = {"uint8": "<u1", "uint16": "<u2", "float32": "<f4", "rgb": "<u1"}
_HYPERSTACK_ORDER = "TZC"  # slowest to fastest, as ImageJ stores stack planes


def assemble(data: np.ndarray, n_c: int, n_z: int, n_t: int, rgb: bool) -> tuple[np.ndarray, str]:
    """Planes (N, Y, X[, 3]) in ImageJ's czt order -> array with singleton axes dropped, and its axes letters."""
    data = data.reshape((n_t, n_z, n_c) + data.shape[1:])
    keep = [i for i, size in enumerate((n_t, n_z, n_c)) if size > 1]
    data = data.reshape(tuple(data.shape[i] for i in keep) + data.shape[3:])
    return data, "".join(_HYPERSTACK_ORDER[i] for i in keep) + "YX" + ("S" if rgb else "")


def read_raw_image(meta: dict) -> LoadedImage:
    """The plugin's raw file and its description (``path``, ``width``, ``height``, ``channels``, ``slices``,
    ``frames``, ``kind``, calibration) as a :class:`LoadedImage`."""
    try:
        kind = str(meta["kind"])
        width, height = int(meta["width"]), int(meta["height"])
        n_c, n_z, n_t = int(meta["channels"]), int(meta["slices"]), int(meta["frames"])
        path = Path(meta["path"])
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"the plugin sent an incomplete image description ({err}): reinstall the plugin") from None
    if kind not in _DTYPES:
        raise UserError(f"unsupported pixel type '{kind}': use 8-, 16- or 32-bit grayscale or RGB")
    rgb = kind == "rgb"
    plane_shape = (height, width, 3) if rgb else (height, width)
    data = np.fromfile(path, dtype=_DTYPES[kind])
    expected = n_c * n_z * n_t * int(np.prod(plane_shape))
    if data.size != expected:
        raise UserError(f"the image file from the plugin holds {data.size} values, not {expected}: run again")
    data = data.astype(_DTYPES[kind][1:], copy=False).reshape((-1,) + plane_shape)
    data, axes = assemble(data, n_c, n_z, n_t, rgb)
    unit = str(meta.get("unit") or "pixel")
    calibration = Calibration(pixel_width=float(meta.get("pixel_width", 1.0)),
                              pixel_height=float(meta.get("pixel_height", 1.0)),
                              pixel_depth=float(meta["pixel_depth"]) if n_z > 1 and meta.get("pixel_depth") else None,
                              unit="pixel" if unit in ("pixel", "pixels", "") else unit)
    return LoadedImage(data=data, axes=axes, calibration=calibration)
