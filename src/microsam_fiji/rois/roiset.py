"""RoiSet.zip files: written atomically from labels or ROIs, read from a RoiSet.zip, a .roi file or a TIFF overlay."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np
from roifile import ImagejRoi, roiread, roiwrite

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import atomic_write
from microsam_fiji.rois.encode import labels_to_rois


def write_roiset(path: str | os.PathLike, labels: np.ndarray, scores: dict[int, float] | None = None,
                 name_prefix: str = "cell", positions=None, slice_suffix: bool = True) -> Path:
    """Write the objects of ``labels`` as an ImageJ RoiSet.zip (replacing any file there, atomically).

    ``slice_suffix``: as for :func:`~microsam_fiji.rois.encode.labels_to_rois` (False for 3D objects: every slice
    of one object keeps its name).

    Labels without objects give a valid zip with no entries (Python readers get no ROIs); ImageJ's ROI Manager
    refuses such a zip with 'This ZIP archive does not contain ".roi" files', so check the object count before
    opening it there."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise UserError(f"'{path}': a ROI set is a .zip file: give a path ending in .zip")
    rois = labels_to_rois(labels, scores=scores, name_prefix=name_prefix, positions=positions,
                          slice_suffix=slice_suffix)
    return write_rois(path, rois)


def write_rois(path: str | os.PathLike, rois: Iterable[ImagejRoi]) -> Path:
    """Write ROIs into a new RoiSet.zip at ``path`` (atomically; an existing file is replaced, not appended to).

    Every member name is unique (:func:`member_names`): one object on several slices keeps its ROI name
    (``cell-0007`` on each) while the zip holds ``cell-0007``, ``cell-0007-z005``, ... — a zip whose members share
    a name loses all but one of them in ``unzip`` and in readers that go by name."""
    rois = list(rois)
    names = member_names(rois)
    return atomic_write(path, lambda tmp: roiwrite(tmp, rois, name=names, mode="w"))


def member_names(rois: list[ImagejRoi]) -> list[str]:
    """Unique zip member names for ``rois``: the ROI's name; a repeated name gets its slice (``-z005``, as
    ImageJ's 1-based position) where that tells it apart, else a number (``-2``, ...) as ImageJ's ROI Manager
    makes names unique when it saves.

    Args:
        rois: the ROIs, in order.

    Returns:
        One name per ROI (without ``.roi``)."""
    taken: set[str] = set()
    out = []
    for roi in rois:
        base = roi.name or roi.autoname
        name = base
        if name in taken:
            slice_index = roi.z_position or roi.position
            if slice_index:
                name = f"{base}-z{slice_index:03d}"
                if roi.t_position:
                    name += f"-t{roi.t_position:03d}"
            number = 2
            while name in taken:
                name = f"{base}-{number}"
                number += 1
        taken.add(name)
        out.append(name)
    return out


class SkippedEntriesWarning(UserWarning):
    """A RoiSet.zip held files that are no ROIs (a README, a results table): skipped, as ImageJ skips them."""


def _zip_rois(path: Path) -> list[ImagejRoi] | None:
    """The ``.roi`` members of a zip (ImageJ's ROI Manager reads only those), warning about the others; None
    when ``path`` is no zip."""
    import warnings
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    from microsam_fiji.core.machine import check_holdable

    with zipfile.ZipFile(path) as archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        names = [i.filename for i in infos]
        members = [n for n in names if n.lower().endswith(".roi")]
        # a .roi is bytes to kilobytes; a member claiming more than memory is a zip bomb, refused before reading
        check_holdable(sum(i.file_size for i in infos if i.filename in members), f"'{path.name}': its ROIs expand to",
                       "not a RoiSet.zip this machine can read (a zip bomb or a damaged file)")
        others = [n for n in names if n not in members]
        if others and members:
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            warnings.warn(f"'{path.name}': skipped what is no .roi file in it ({shown}), as ImageJ does",
                          SkippedEntriesWarning, stacklevel=3)
        return [ImagejRoi.frombytes(archive.read(n)) for n in members] if members else None


def read_roiset(path: str | os.PathLike) -> list[ImagejRoi]:
    """The ROIs of a RoiSet.zip, a single .roi file, or the overlay of an ImageJ TIFF.

    Args:
        path: the file. A zip's members that are no ``.roi`` files are skipped with a
            :class:`SkippedEntriesWarning` (ImageJ's ROI Manager skips them too).

    Returns:
        The ROIs, in the file's order.

    Raises:
        UserError: for a missing file or one that holds no ImageJ ROIs."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"ROI file '{path}' not found: check the path")
    try:
        from_zip = _zip_rois(path)
        if from_zip is not None:
            return from_zip
        rois = roiread(path)
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - zipfile.BadZipFile, struct errors, ValueError from roifile
        raise UserError(f"'{path}' is not an ImageJ ROI file or RoiSet.zip ({err})") from None
    if isinstance(rois, list):
        if not rois and path.suffix.lower() in (".tif", ".tiff"):
            raise UserError(f"'{path}' holds no ImageJ ROIs (overlay): give a RoiSet.zip or .roi file")
        return rois
    return [rois]


