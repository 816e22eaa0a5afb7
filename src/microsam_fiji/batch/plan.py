"""Which images a batch segments and where each one's outputs go.

Outputs are named ``<stem>_labels.tif`` / ``<stem>_RoiSet.zip`` / ``<stem>_objects.csv`` (per-object
measurements) / ``<stem>.microsam.json`` (the stamp) as a single-image run names them. Where two inputs share a stem
(``a1.png`` and ``a1.tif``, or ``a1.tif`` in two
folders) the name grows until it is unique: first the file's suffix (``a1_png``, ``a1_tif``), then its parent
folders (``plate1_a1_tif``), so no output ever replaces another's.

Nor does an output replace a file this program did not write, or the outputs of another input from an earlier
batch: an existing file counts as ours only where the stamp of that name lists it and records this same input.
Otherwise (the user's own ``x_labels.tif``; ``x.tif`` of another folder segmented into the same ``--out`` before)
the name takes a number, ``x-2``, ``x-3``, ..., with a warning; reruns find that name again by its stamp.
Two batches planning into one ``--out`` at the same time (``A/x.tif`` and ``B/x.tif``) cannot both take ``x``:
:func:`claim_jobs` plans under a lock on the folder and writes each new name's claim stamp before releasing it,
so the second batch sees ``x`` taken by another input and takes ``x-2``.

Folders and glob patterns leave out what is no input: label images this program wrote (their stamp is beside
them) and a ``<stem>_labels.tif`` beside a ``<stem>.tif`` segmented in the same batch (that image's label image,
the user's ground truth say), with a warning; a file named explicitly is always an input."""
from __future__ import annotations

import glob
import itertools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from microsam_fiji.batch.stamp import claim, owned_outputs, read_stamp
from microsam_fiji.batch.summary import SUMMARY_NAME, is_summary
from microsam_fiji.core.errors import UserError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
STAMP_SUFFIX = ".microsam.json"
LABELS_SUFFIX = "_labels.tif"
OBJECTS_SUFFIX = "_objects.csv"


@dataclass(frozen=True)
class Job:
    """One image and its output names (absolute paths: on a cluster they travel to other machines)."""

    image: str
    given: str  # the path as the user wrote it, for messages and summary.csv
    name: str
    labels: str
    rois: str | None
    stamp: str
    objects: str | None = None  # the per-object measurements (CSV)

    def outputs(self) -> list[str]:
        return [p for p in (self.labels, self.rois, self.objects) if p]


def expand_images(items: list[str | os.PathLike]) -> list[Path]:
    """Files as given, folders as their image files (sorted), glob patterns (``plate/*.tif``) as their matches;
    without the label images of the module doc."""
    paths: list[Path] = []
    found_in_folders: set[Path] = set()
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"folder '{path}' has no images ({', '.join(IMAGE_SUFFIXES)})")
        elif path.exists():
            paths.append(path)
            continue
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"no file matches '{item}': check the pattern")
        else:
            raise UserError(f"image '{path}' not found: check the path")
        paths.extend(found)
        found_in_folders.update(found)
    unique: dict[Path, Path] = {}
    for p in paths:  # the same file named twice (a folder and a glob) is segmented once
        if not is_output(p):
            unique.setdefault(p.resolve(), p)
    stems = {(key.parent, key.stem.lower()) for key in unique}
    left_out = [p for key, p in unique.items() if p in found_in_folders and _label_image_of(key, stems)]
    for p in left_out:
        del unique[p.resolve()]
    if left_out:
        names = ", ".join(f"'{p.name}'" for p in left_out[:3]) + (", ..." if len(left_out) > 3 else "")
        warnings.warn(f"left out {len(left_out)} label image{'s' if len(left_out) > 1 else ''} found beside "
                      f"{'their images' if len(left_out) > 1 else 'its image'} ({names}): not segmented, nor "
                      "replaced; name such a file explicitly to segment it", UserWarning, stacklevel=3)
    if paths and not unique:
        raise UserError("all the images given are label images written by microsam-fiji: give the original images")
    return list(unique.values())


def _label_image_of(path: Path, stems: set[tuple[Path, str]]) -> bool:
    """``<stem>_labels.tif`` where ``<stem>.*`` is an input in the same folder (``stems``: resolved parent, stem)."""
    name = path.name.lower()
    for suffix in (LABELS_SUFFIX, LABELS_SUFFIX + "f"):
        if name.endswith(suffix) and (path.parent, name[:-len(suffix)]) in stems:
            return True
    return False


def is_output(path: Path) -> bool:
    """A label image this tool wrote (the stamp beside it lists it): with --out inside the input folder, a rerun
    must not segment the previous run's labels."""
    name = path.name
    if not name.endswith(LABELS_SUFFIX):
        return False
    stem = name[:-len(LABELS_SUFFIX)]
    stamp = read_stamp(path.parent / f"{stem}{STAMP_SUFFIX}")
    return stamp is not None and name in owned_outputs(stamp, stem)


def _candidates(path: Path):
    stem = path.stem
    yield stem
    tail = f"{stem}_{path.suffix.lstrip('.')}" if path.suffix else stem
    yield tail
    for parent in path.resolve().parents:
        if not parent.name:
            break
        tail = f"{parent.name}_{tail}"
        yield tail


def output_names(paths: list[Path]) -> list[str]:
    """A unique output name per image (see module doc); the same inputs always give the same names."""
    names: list[str | None] = [None] * len(paths)
    generators = [_candidates(p) for p in paths]
    current = [next(g) for g in generators]
    pending = set(range(len(paths)))
    while pending:
        counts: dict[str, int] = {}
        for i in range(len(paths)):
            counts[current[i].lower()] = counts.get(current[i].lower(), 0) + 1  # case-insensitive file systems
        clashing = {i for i in pending if counts[current[i].lower()] > 1}
        for i in pending - clashing:
            names[i] = current[i]
        pending = clashing
        for i in clashing:
            current[i] = next(generators[i], None) or f"{current[i]}_{i + 1}"
    return [str(n) for n in names]


def plan_jobs(paths: list[Path], out: Path, rois: bool) -> list[Job]:
    """A job per image with its output names: unique in the batch, and never on a file that is not this
    input's own output (see module doc)."""
    out = out.resolve()
    names = output_names(paths)
    taken = {n.lower() for n in names}
    jobs = []
    for path, base in zip(paths, names):
        image = str(path.resolve())
        name, blocker = base, _in_the_way(out, base, image, rois)
        if blocker is not None:
            name = next(n for n in (f"{base}-{k}" for k in itertools.count(2))
                        if n.lower() not in taken and _in_the_way(out, n, image, rois) is None)
            taken.add(name.lower())
            warnings.warn(f"'{path}' -> {name}{LABELS_SUFFIX} (not {base}{LABELS_SUFFIX}): in --out '{out}', "
                          f"{blocker} and is kept", UserWarning, stacklevel=3)
        jobs.append(Job(image=image, given=str(path), name=name, labels=str(out / f"{name}{LABELS_SUFFIX}"),
                        rois=str(out / f"{name}_RoiSet.zip") if rois else None,
                        stamp=str(out / f"{name}{STAMP_SUFFIX}"), objects=str(out / f"{name}{OBJECTS_SUFFIX}")))
    return jobs


def claim_jobs(paths: list[Path], out: Path, rois: bool) -> list[Job]:
    """:func:`plan_jobs`, and each new output name claimed, under an exclusive lock on ``out``.

    Args:
        paths: the inputs (:func:`expand_images`).
        out: the output folder (it must exist: :func:`check_writable` makes it).
        rois: whether the jobs write ROI sets too.

    Returns:
        the jobs; every one has a stamp of its input in ``out`` (a claim where it had none), so a batch planning
        into ``out`` at the same time picks other names for other inputs."""
    from microsam_fiji.core.folder_lock import folder_lock

    with folder_lock(out):
        jobs = plan_jobs(paths, out, rois)
        for job in jobs:
            if read_stamp(job.stamp) is None:  # a new name (plan_jobs never picks one a foreign file holds)
                claim(job)
    return jobs


def _in_the_way(out: Path, name: str, image: str, rois: bool) -> str | None:
    """Why the outputs of ``image`` cannot be called ``name`` in ``out`` (what file is in the way), or None. A
    folder in the way is left to :func:`check_writable`, which refuses it."""
    stamp_path = out / f"{name}{STAMP_SUFFIX}"
    stamp = read_stamp(stamp_path)
    if stamp is None and stamp_path.is_file():
        return f"'{stamp_path.name}' was not written by microsam-fiji"
    if stamp is not None and stamp["image"]["path"] != image:
        return f"'{name}{LABELS_SUFFIX}' holds the result of another image ('{stamp['image']['path']}')"
    owned = owned_outputs(stamp, name) if stamp is not None else set()
    for target in (f"{name}{LABELS_SUFFIX}", f"{name}_RoiSet.zip" if rois else None, f"{name}{OBJECTS_SUFFIX}"):
        if target and (out / target).is_file() and target not in owned:
            return f"'{target}' was not written by microsam-fiji"
    return None


def check_writable(out: Path, jobs: list[Job]) -> None:
    """Fail now, in one line, if the outputs cannot be written: not after hours of segmentation."""
    from microsam_fiji.core.writable import check_writable as probe

    probe(out, "--out", folder=True)
    summary = out / SUMMARY_NAME
    if summary.exists() and not is_summary(summary):
        raise UserError(f"--out '{out}' holds a {SUMMARY_NAME} that microsam-fiji did not write (other columns): "
                        "move it, or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        for target in (*job.outputs(), job.stamp):
            if os.path.isdir(target):
                raise UserError(f"output '{target}' exists as a folder: move or rename it, or choose another --out")
