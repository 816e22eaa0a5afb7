"""Which images a batch segments and where each one's outputs go.

Outputs are named ``<stem>_labels.tif`` / ``<stem>_RoiSet.zip`` / ``<stem>.microsam.json`` (the stamp) as a
single-image run names them. Where two inputs share a stem (``a1.png`` and ``a1.tif``, or ``a1.tif`` in two
folders) the name grows until it is unique: first the file's suffix (``a1_png``, ``a1_tif``), then its parent
folders (``plate1_a1_tif``), so no output ever replaces another's."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from microsam_fiji.core.errors import UserError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
STAMP_SUFFIX = ".microsam.json"


@dataclass(frozen=True)
class Job:
    """One image and its output names (absolute paths: on a cluster they travel to other machines)."""

    image: str
    given: str  # the path as the user wrote it, for messages and summary.csv
    name: str
    labels: str
    rois: str | None
    stamp: str

    def outputs(self) -> list[str]:
        return [p for p in (self.labels, self.rois) if p]


def expand_images(items: list[str | os.PathLike]) -> list[Path]:
    """Files as given, folders as their image files (sorted), glob patterns (``plate/*.tif``) as their matches."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise UserError(f"folder '{path}' has no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif path.exists():
            paths.append(path)
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not found:
                raise UserError(f"no file matches '{item}': check the pattern")
            paths.extend(found)
        else:
            raise UserError(f"image '{path}' not found: check the path")
    unique: dict[Path, Path] = {}
    for p in paths:  # the same file named twice (a folder and a glob) is segmented once
        if not is_output(p):
            unique.setdefault(p.resolve(), p)
    if paths and not unique:
        raise UserError("all the images given are label images written by microsam-fiji: give the original images")
    return list(unique.values())


def is_output(path: Path) -> bool:
    """A label image this tool wrote (its stamp is beside it): with --out inside the input folder, a rerun must
    not segment the previous run's labels."""
    name = path.name
    return name.endswith("_labels.tif") and (path.parent / f"{name[:-len('_labels.tif')]}{STAMP_SUFFIX}").exists()


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
    out = out.resolve()
    return [Job(image=str(p.resolve()), given=str(p), name=name, labels=str(out / f"{name}_labels.tif"),
                rois=str(out / f"{name}_RoiSet.zip") if rois else None, stamp=str(out / f"{name}{STAMP_SUFFIX}"))
            for p, name in zip(paths, output_names(paths))]


def check_writable(out: Path, jobs: list[Job]) -> None:
    """Fail now, in one line, if the outputs cannot be written: not after hours of segmentation."""
    from microsam_fiji.core.writable import check_writable as probe

    probe(out, "--out", folder=True)
    out.mkdir(parents=True, exist_ok=True)
    for job in jobs:
        for target in (*job.outputs(), job.stamp):
            if os.path.isdir(target):
                raise UserError(f"output '{target}' exists as a folder: move or rename it, or choose another --out")
