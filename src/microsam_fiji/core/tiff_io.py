"""Images in, label images out, as ImageJ reads and writes them (tifffile, ``imagej=True``).

ImageJ 1.x has no 32-bit integer pixel type: labels go out as 16-bit while ids fit (<= 65,535), otherwise as
32-bit float, which holds every integer exactly up to 2**24 (16,777,216 objects)."""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from microsam_fiji.core.errors import UserError, first_line

MAX_FLOAT_EXACT = 2**24
_TIFF_SUFFIXES = (".tif", ".tiff")
# tifffile axis letters for "one more image" that ImageJ calls slices
_STACK_LETTERS = {"I": "Z", "Q": "Z"}


@dataclass
class Calibration:
    pixel_width: float = 1.0
    pixel_height: float = 1.0
    pixel_depth: float | None = None
    unit: str = "pixel"


@dataclass
class LoadedImage:
    data: np.ndarray
    axes: str  # ImageJ letters (X, Y, Z, T, C, S)
    calibration: Calibration


_MICRON_SPELLINGS = ("micron", "microns", "um", "\\u00B5m", "\u00b5m", "\u03bcm")


class ImageReadWarning(UserWarning):
    """A file was read in a way its layout leaves open: alpha dropped, one series of several taken."""


def _calibration(tif, page=None) -> Calibration:
    """Pixel size from the X/YResolution tags (of ``page``, default the first), unit and z spacing from ImageJ's
    description."""
    page = page if page is not None else tif.pages.first
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "pixel"))
    cal = Calibration(unit="µm" if unit in _MICRON_SPELLINGS else unit)
    tags = getattr(page, "tags", {})
    if "XResolution" in tags and "YResolution" in tags:
        for attr, tag in (("pixel_width", "XResolution"), ("pixel_height", "YResolution")):
            num, den = tags[tag].value
            if num:
                setattr(cal, attr, den / num)
    if "spacing" in meta:
        cal.pixel_depth = float(meta["spacing"])
    return cal


def _largest_series(tif, path: Path):
    """The series with the most pixels (the first of equals); a warning where the file holds several (a slide
    scanner's thumbnail and label images, several positions): only one is segmented."""
    series = list(tif.series)
    sizes = [int(np.prod(s.shape)) for s in series]
    index = max(range(len(series)), key=lambda i: (sizes[i], -i))
    if len(series) > 1:
        others = ", ".join(str(tuple(s.shape)) for i, s in enumerate(series) if i != index)
        warnings.warn(f"'{path}' holds {len(series)} image series: segmenting the largest, series {index} (shape "
                      f"{tuple(series[index].shape)}), not the others ({others}); save the one you mean on its own "
                      "to segment another", ImageReadWarning, stacklevel=3)
    return series[index]


def _without_alpha(data: np.ndarray, axes: str, path: Path) -> tuple[np.ndarray, str]:
    """RGBA as RGB and gray + alpha as gray (transparency is no image channel), with a warning. ``axes`` empty
    (a PNG, JPEG, ...): a trailing axis of 2, 3 or 4 holds colour samples."""
    if not axes and data.ndim == 3 and data.shape[-1] in (2, 3, 4):
        axes = "YXS"
    if not axes.endswith("S") or data.shape[-1] not in (2, 4):
        return data, axes
    if data.shape[-1] == 2:
        warnings.warn(f"'{path}' is gray with an alpha channel: the alpha (transparency) is ignored",
                      ImageReadWarning, stacklevel=3)
        return data[..., 0], axes[:-1]
    warnings.warn(f"'{path}' is RGBA: the alpha channel (transparency) is ignored and the image segmented as RGB",
                  ImageReadWarning, stacklevel=3)
    return data[..., :3], axes


_TOO_LARGE = ("not an image this machine can read whole (a damaged file, or one made to exhaust memory); if it is "
              "real, save a crop or a downsampled copy in Fiji and segment that")


def _check_claimed_size(path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """Refuse, before reading, pixels the file's header claims and this machine cannot hold (a 138-byte TIFF may
    declare 200000×200000)."""
    from microsam_fiji.core.machine import check_holdable

    claimed = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    check_holdable(claimed, f"'{path.name}' declares a {'×'.join(map(str, shape))} {dtype.name} image of",
                   _TOO_LARGE)


def _check_pillow_size(path: Path) -> None:
    """The same for PNG, JPEG and the other formats Pillow reads (its header, not its pixels)."""
    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own check follows
            with Image.open(path) as image:
                width, height = image.size
                bands = len(image.getbands())
                frames = getattr(image, "n_frames", 1)
    except Exception as err:  # noqa: BLE001 - Pillow raises many kinds for what it cannot read
        if type(err).__name__ == "DecompressionBombError":  # Pillow's own cap (about 179 million pixels)
            raise UserError(f"'{path.name}': {first_line(err)}: {_TOO_LARGE}") from None
        return  # not a format Pillow knows: the reader below says so
    _check_claimed_size(path, (frames, height, width, bands) if frames > 1 else (height, width, bands),
                        np.dtype(np.uint8))


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Pixels, ImageJ-style axes and calibration of an image file (TIFF via tifffile, others via scikit-image).

    A TIFF with several image series gives its largest; RGBA gives RGB and gray + alpha gray (a warning says
    so each time, :class:`ImageReadWarning`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"image '{path}' not found: check the path")
    if path.suffix.lower() in _TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tif:
                series = _largest_series(tif, path)
                _check_claimed_size(path, tuple(series.shape), np.dtype(series.dtype))
                data = series.asarray()
                axes = "".join(_STACK_LETTERS.get(a, a) for a in series.axes)
                calibration = _calibration(tif, series.keyframe)
        except (tifffile.TiffFileError, ValueError) as err:
            raise UserError(f"'{path}' is not a readable TIFF ({err})") from None
        data, axes = _without_alpha(data, axes, path)
        return LoadedImage(data=data, axes=axes, calibration=calibration)
    from skimage.io import imread

    _check_pillow_size(path)
    try:
        data = imread(path)
    except Exception as err:  # noqa: BLE001 - scikit-image's readers raise many kinds for what they cannot read
        raise UserError(f"cannot read image '{path}' ({type(err).__name__}): save it as TIFF") from None
    data, axes = _without_alpha(data, "", path)
    return LoadedImage(data=data, axes=axes, calibration=Calibration())


def labels_for_imagej(labels: np.ndarray) -> np.ndarray:
    """uint16 where every id fits, else float32 (exact to 2**24); larger id counts are refused."""
    top = int(labels.max()) if labels.size else 0
    if top <= np.iinfo(np.uint16).max:
        return labels.astype(np.uint16)
    if top > MAX_FLOAT_EXACT:
        raise UserError(f"{top} label ids cannot be stored exactly for ImageJ (32-bit float holds ids up to "
                        f"{MAX_FLOAT_EXACT}): split the image")
    return labels.astype(np.float32)


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` and move the result into place, so readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        # mkstemp creates 0600; give the file the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_labels(path: str | os.PathLike, labels: np.ndarray, calibration: Calibration | None = None,
                 axes: str | None = None) -> Path:
    """Write ``labels`` as an ImageJ TIFF (see module doc for the pixel type), atomically."""
    import tifffile

    labels = np.asarray(labels)
    data = labels_for_imagej(labels)
    cal = calibration or Calibration()
    axes = axes or {2: "YX", 3: "ZYX", 4: "TZYX"}[labels.ndim]
    # the ImageJ description is ASCII; ImageJ itself writes micrometres as "micron"
    unit = "micron" if cal.unit in ("µm", *_MICRON_SPELLINGS) else cal.unit
    metadata: dict[str, object] = {"axes": axes, "unit": unit}
    if cal.pixel_depth is not None:
        metadata["spacing"] = cal.pixel_depth

    def write(tmp):
        tifffile.imwrite(tmp, data, imagej=True, resolution=(1.0 / cal.pixel_width, 1.0 / cal.pixel_height),
                         metadata=metadata)

    return atomic_write(path, write)
