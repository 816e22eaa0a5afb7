"""Training pairs for fine-tuning: an image and its instance labels, the labels a label image (TIFF, array) or an
ImageJ RoiSet.zip (ROI lists too), decoded with the same ROI -> label code as ``microsam-fiji labels``.

Every check that can fail runs here, before the model is loaded or any training starts, and fails in one line
(:class:`UserError`) naming the file and the fix. A pair becomes what micro-sam's trainer reads: the image as the
uint8 RGB view micro-sam segments (``micro_sam.util._to_image`` on our planes, so training sees what APG sees)
and the labels renumbered in raster order, so that a RoiSet and the label image it came from (or any other
numbering of the same objects) give identical arrays."""
from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from microsam_fiji.core.errors import UserError

# micro-sam's trainer samples patches with at least this many objects of at least MIN_OBJECT_PIXELS
# (default_sam_dataset: MinInstanceSampler(2, min_size=25))
MIN_OBJECTS = 2
MIN_OBJECT_PIXELS = 25
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
ROI_SUFFIXES = (".zip", ".roi")
# the names our own outputs have (segment, prompt, labels -> rois), in the order they are tried
LABEL_ENDINGS = ("_labels.tif", "_labels.tiff", "_RoiSet.zip", "_rois.zip", ".zip", ".roi")


@dataclass
class Pair:
    """One training image: ``image`` (3, Y, X) uint8 as micro-sam sees it, ``labels`` (Y, X) int32 instances."""

    name: str
    image: np.ndarray
    labels: np.ndarray
    labels_from: str  # "label image", "RoiSet", "ROIs"
    source: int = 0  # which of the given images (a stack's planes share it)

    @property
    def n_objects(self) -> int:
        return int(self.labels.max())


@dataclass
class TrainingData:
    """The pairs to train on and to validate on, and what the provenance says about them."""

    train: list[Pair]
    val: list[Pair]
    # where validation comes from: "split" (val_fraction of the images), "given" (val_images), "training images"
    val_kind: str
    skipped: list[str] = field(default_factory=list)  # planes without objects, left out

    def describe(self) -> dict[str, Any]:
        """Plain values for the checkpoint's provenance (no pixels, no paths beyond the file names)."""
        def part(pairs: list[Pair]) -> dict[str, Any]:
            return {"images": len(pairs), "objects": int(sum(p.n_objects for p in pairs)),
                    "pixels": int(sum(p.labels.size for p in pairs)),
                    "names": [p.name for p in pairs][:50],
                    "labels_from": sorted({p.labels_from for p in pairs})}

        return {"train": part(self.train), "validation": {**part(self.val), "from": self.val_kind},
                "fingerprint": self.fingerprint(), "skipped_planes": len(self.skipped)}

    def fingerprint(self) -> str:
        """sha256 of the pixels and labels (train, then validation): a resumed run must see the same data."""
        digest = hashlib.sha256()
        for pair in [*self.train, None, *self.val]:
            if pair is None:
                digest.update(b"|validation|")
                continue
            for arr in (pair.image, pair.labels):
                digest.update(str(arr.shape).encode())
                digest.update(np.ascontiguousarray(arr).tobytes())
        return digest.hexdigest()

    @property
    def largest_side(self) -> int:
        return max(max(p.labels.shape) for p in self.train + self.val)


# --- matching files by name ------------------------------------------------------------------------------------

def _is_label_file(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(("_labels.tif", "_labels.tiff")) or path.suffix.lower() in ROI_SUFFIXES


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
                  and not _is_label_file(p))


def _label_candidates(image: Path, labels: Path) -> list[Path]:
    """The files in ``labels`` that can hold ``image``'s labels: ``x_labels.tif``, ``x_RoiSet.zip`` (also as
    our batch names them when two inputs share a stem: ``x_png_labels.tif``), and ``x.tif`` itself where the
    labels have their own folder."""
    stems = [image.stem, f"{image.stem}_{image.suffix.lstrip('.').lower()}"]
    found = [labels / f"{stem}{ending}" for stem in stems for ending in LABEL_ENDINGS]
    if labels.resolve() != image.parent.resolve():
        found += [labels / image.name] + [labels / f"{image.stem}{s}" for s in IMAGE_SUFFIXES if s != image.suffix]
    seen, out = set(), []
    for path in found:
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def _listed(paths: Sequence[Path], limit: int = 4) -> str:
    names = [p.name for p in paths]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def match_folders(images: str | os.PathLike, labels: str | os.PathLike | None = None) -> list[tuple[Path, Path]]:
    """(image, labels) file pairs from two folders (or one), matched by file stem: ``x.tif`` with
    ``x_labels.tif`` or ``x_RoiSet.zip`` (the names our own outputs have), or ``x.tif`` in both folders. Where both
    a label image and a RoiSet exist (``segment`` writes both; you corrected one in Fiji) the newer file is taken,
    with a warning.

    Args:
        images: the folder of images.
        labels: the folder of labels (None: the images' folder).

    Returns:
        The pairs, by image name.

    Raises:
        UserError: a folder is missing or empty, or files are left without a partner (named in the line)."""
    folder = Path(images).expanduser()
    label_folder = Path(labels).expanduser() if labels is not None else folder
    for what, path in (("images", folder), ("labels", label_folder)):
        if not path.is_dir():
            raise UserError(f"{what} folder '{path}' not found or not a folder: check the path")
    pairs, unlabelled = [], []
    used: set[Path] = set()
    for image in _images_in(folder):
        found = _label_candidates(image, label_folder)
        if not found:
            unlabelled.append(image)
            continue
        chosen = max(found, key=lambda p: p.stat().st_mtime) if len(found) > 1 else found[0]
        if len(found) > 1:
            warnings.warn(f"{image.name}: labels in {_listed(found)}: took the newest, {chosen.name}",
                          UserWarning, stacklevel=2)
        used.update(p.resolve() for p in found)
        pairs.append((image, chosen))
    if not pairs and not unlabelled:
        raise UserError(f"no images in '{folder}' (looked for {', '.join(IMAGE_SUFFIXES)}): check --images")
    if unlabelled:
        raise UserError(f"no labels for {_listed(unlabelled)} in '{label_folder}': name them like "
                        f"{unlabelled[0].stem}_labels.tif or {unlabelled[0].stem}_RoiSet.zip (or move the images "
                        "out of the folder)")
    strays = [p for p in sorted(label_folder.iterdir()) if p.is_file() and _is_label_file(p)
              and p.resolve() not in used]
    if strays:
        raise UserError(f"labels without an image: {_listed(strays)} in '{label_folder}': give each an image of the "
                        f"same name in '{folder}' (x.tif for x_labels.tif / x_RoiSet.zip) or move them away")
    return pairs


# --- reading one pair --------------------------------------------------------------------------------------------

def _name(item: Any, index: int, what: str) -> str:
    if isinstance(item, (str, os.PathLike)):
        return Path(item).name
    return f"{what} {index + 1}"


def _names(items: Sequence[Any], what: str) -> list[str]:
    """How messages and the provenance name each item: the file name, with its folder where names repeat
    (``set1/raw.tif``, ``set2/raw.tif``)."""
    names = [_name(item, i, what) for i, item in enumerate(items)]
    return [f"{Path(item).parent.name}/{name}" if names.count(name) > 1 and isinstance(item, (str, os.PathLike))
            else name for item, name in zip(items, names)]


def _planes(image: Any, name: str, channel: int | None):
    """Our planes of an image (a file or an array) and the ImageJ letters of its stack axes."""
    from microsam_fiji.core.images import to_planes
    from microsam_fiji.core.tiff_io import read_image

    axes = None
    if isinstance(image, (str, os.PathLike)):
        loaded = read_image(image)
        image, axes = loaded.data, loaded.axes
    try:
        planes = to_planes(image, axes, channel=channel)
    except UserError as err:
        raise UserError(f"{name}: {err}") from None
    stack_axes = "".join(a for a in (axes or "") if a in "ZT")
    return planes, stack_axes if len(stack_axes) == len(planes.stack_shape) else None


def _roi_outside(rois, height: int, width: int) -> list:
    return [r for r in rois if r.right <= 0 or r.bottom <= 0 or r.left >= width or r.top >= height]


def _label_array(labels: Any, shape: tuple[int, ...], stack_axes: str | None, name: str,
                 label_name: str) -> tuple[np.ndarray, str]:
    """The labels of one image as an integer array of ``shape`` and where they came from."""
    from microsam_fiji.rois.decode import RoisOutsideWarning, rois_to_labels
    from microsam_fiji.rois.roiset import read_roiset

    rois = None
    if isinstance(labels, (str, os.PathLike)):
        path = Path(labels)
        if path.suffix.lower() in ROI_SUFFIXES:
            rois, kind = read_roiset(path), "RoiSet"
        else:
            from microsam_fiji.core.tiff_io import read_image

            arr, kind = read_image(path).data, "label image"
    elif isinstance(labels, (list, tuple)):
        rois, kind = list(labels), "ROIs"
    else:
        arr, kind = np.asarray(labels), "label image"
    if rois is not None:
        if not rois:
            raise UserError(f"{label_name} holds no ROIs: annotate the objects of {name} first")
        outside = _roi_outside(rois, shape[-2], shape[-1])
        if outside:
            raise UserError(f"{label_name} does not fit {name}: {len(outside)} of {len(rois)} ROIs lie outside its "
                            f"{shape[-1]}x{shape[-2]} pixels (e.g. '{outside[0].name or '?'}'): pair each RoiSet "
                            "with the image it was drawn on")
        with warnings.catch_warnings():
            # ROIs that reach beyond the border are cut, as ImageJ cuts them: the warning is for the
            # labels command, where a wrong --shape is the usual cause
            warnings.simplefilter("ignore", RoisOutsideWarning)
            arr = rois_to_labels(rois, shape, stack_axes)
        return arr, kind
    arr = np.squeeze(arr) if arr.ndim > len(shape) else arr
    if tuple(arr.shape) != tuple(shape):
        raise UserError(f"{label_name} is {'x'.join(map(str, arr.shape[::-1]))} but {name} is "
                        f"{'x'.join(map(str, shape[::-1]))} (x, y{', planes' if len(shape) > 2 else ''}): pair each "
                        "image with its own labels")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise UserError(f"{label_name}: labels of type {arr.dtype}: use an integer label image (0 = background)")
    if np.issubdtype(arr.dtype, np.floating) and (not np.isfinite(arr).all() or (arr != np.round(arr)).any()):
        raise UserError(f"{label_name} holds fractional values: give instance labels (integers, 0 = background)")
    if arr.size and arr.min() < 0:
        raise UserError(f"{label_name} holds negative values: give instance labels (integers, 0 = background)")
    return arr, kind


def renumbered(labels: np.ndarray) -> np.ndarray:
    """``labels`` with ids 1..n in raster order of each object's first pixel (int32): any numbering of the same
    objects gives the same array."""
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    keep = ids != 0
    ids, first = ids[keep], first[keep]
    order = np.argsort(first, kind="stable")
    lookup_ids = ids[order]
    out = np.zeros(flat.shape, np.int32)
    if lookup_ids.size:
        sorter = np.argsort(lookup_ids)
        found = flat != 0
        position = np.searchsorted(lookup_ids, flat[found], sorter=sorter)
        out[found] = sorter[position] + 1
    return out.reshape(labels.shape)


def read_pairs(images: Sequence[Any], labels: Sequence[Any], channel: int | None = None,
               what: str = "image") -> tuple[list[Pair], list[str]]:
    """Pairs from parallel lists (paths, arrays; labels also ROI lists), stacks split into planes.

    Args:
        images: image files or arrays.
        labels: label images (files, arrays), RoiSet.zip / .roi files or lists of ``roifile.ImagejRoi``.
        channel: which channel of multi-channel images (as ``segment``'s ``channel=``).
        what: how messages name the items ("image", "validation image").

    Returns:
        (the pairs with objects, names of planes left out because they have none).

    Raises:
        UserError: unreadable files, sizes that differ, ROIs outside their image, no objects in an image."""
    from microsam_fiji.core.micro_sam_compat import to_image
    from microsam_fiji.core.progress import report

    if len(images) != len(labels):
        raise UserError(f"{len(images)} {what}s but {len(labels)} labels: give one label image or RoiSet per image")
    pairs, skipped = [], []
    names = _names(images, what)
    for index, (image, label) in enumerate(zip(images, labels)):
        report("reading the training data", index, len(images))
        name = names[index]
        label_name = Path(label).name if isinstance(label, (str, os.PathLike)) else f"the labels of {name}"
        planes, stack_axes = _planes(image, name, channel)
        arr, kind = _label_array(label, planes.label_shape, stack_axes, name, label_name)
        arr = arr.reshape((-1,) + planes.data.shape[1:3])
        if not arr.any():
            raise UserError(f"{label_name} has no objects: annotate the objects of {name} (or leave it out)")
        for k, (plane, plane_labels) in enumerate(zip(planes.data, arr)):
            plane_name = name if len(arr) == 1 else f"{name} plane {k + 1}"
            if not plane_labels.any():
                skipped.append(plane_name)
                continue
            rgb = np.ascontiguousarray(to_image(plane).transpose(2, 0, 1))  # micro-sam's view, channels first
            pairs.append(Pair(plane_name, rgb, renumbered(plane_labels), kind, index))
    return pairs, skipped


def check_trainable(pairs: Sequence[Pair]) -> None:
    """Each training image must offer micro-sam's sampler what it asks of a patch: at least two objects of at
    least 25 pixels.

    Raises:
        UserError: naming the first image that has fewer."""
    for pair in pairs:
        sizes = np.bincount(pair.labels.ravel())[1:]
        if int((sizes >= MIN_OBJECT_PIXELS).sum()) < MIN_OBJECTS:
            raise UserError(f"{pair.name} has {int((sizes >= MIN_OBJECT_PIXELS).sum())} object(s) of at least "
                            f"{MIN_OBJECT_PIXELS} pixels; micro-sam's trainer needs at least {MIN_OBJECTS} per image: "
                            "annotate more objects or leave the image out")


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike, np.ndarray)):
        return [value]
    return list(value)


def gather(images: Any, labels: Any = None, *, val_images: Any = None, val_labels: Any = None,
           val_fraction: float = 0.2, seed: int = 0, channel: int | None = None) -> TrainingData:
    """Read, check and split the training data.

    Args:
        images: a folder (matched with ``labels`` by file name, see :func:`match_folders`), an image file or
            array, or a list of them.
        labels: a folder (None: the images' folder, when ``images`` is a folder), or the labels of each image
            (label image file or array, RoiSet.zip / .roi, list of ImageJ ROIs).
        val_images, val_labels: a validation set in the same forms (then ``val_fraction`` is not used).
        val_fraction: the share of the images held out for validation (at least one image; 0: validate on the
            training images, which measures the fit, not how well the model generalises).
        seed: which images are held out.
        channel: the channel of multi-channel images.

    Returns:
        The :class:`TrainingData`.

    Raises:
        UserError: see :func:`read_pairs`, :func:`check_trainable`, and fewer than two images when a validation
        split is asked for."""
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction {val_fraction}: give a share from 0 (no split) to below 1, e.g. 0.2")
    image_items, label_items = _items(images, labels, "images")
    if val_images is not None:
        val_image_items, val_label_items = _items(val_images, val_labels, "validation images")
        if not val_image_items:
            raise UserError("val_images holds no images: give validation images or leave val_images out")
    else:
        val_image_items, val_label_items = [], []
    if not image_items:
        raise UserError("no training images given")
    if val_images is None and val_fraction > 0 and len(image_items) < 2:
        raise UserError(f"{len(image_items)} training image: a validation split needs at least 2 (or give a "
                        "validation set, or val_fraction=0 to validate on the training image)")
    pairs, skipped = read_pairs(image_items, label_items, channel)
    val, val_skipped = read_pairs(val_image_items, val_label_items, channel, "validation image")
    if val_images is not None:
        kind = "given"
        train = pairs
    elif val_fraction > 0:
        kind = "split"
        train, val = _split(pairs, len(image_items), val_fraction, seed)
    else:
        kind, train, val = "training images", pairs, list(pairs)
    check_trainable(train)
    return TrainingData(train=train, val=val, val_kind=kind, skipped=skipped + val_skipped)


def _items(images: Any, labels: Any, what: str) -> tuple[list, list]:
    if isinstance(images, (str, os.PathLike)) and Path(images).expanduser().is_dir():
        if labels is not None and not (isinstance(labels, (str, os.PathLike)) and Path(labels).expanduser().is_dir()):
            raise UserError(f"{what} is a folder: give the labels as a folder too (or lists of files)")
        matched = match_folders(images, labels)
        return [p[0] for p in matched], [p[1] for p in matched]
    if labels is None:
        raise UserError(f"no labels for the {what}: give labels (a folder, files, arrays or ROI lists)")
    image_list = _as_list(images)
    # one image with a list of ROIs: the ROIs are that image's labels, not one labels item per image
    label_list = [labels] if len(image_list) == 1 and _is_roi_list(labels) else _as_list(labels)
    return image_list, label_list


def _is_roi_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(hasattr(v, "tobytes") and hasattr(v, "roitype")
                                                                    for v in value)


def _split(pairs: list[Pair], n_items: int, fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """Hold out whole files (all planes of a stack together): max(1, round(fraction * files)) of them."""
    n_val = max(1, int(round(fraction * n_items)))
    held = set(np.random.default_rng(seed).choice(n_items, size=n_val, replace=False).tolist())
    train = [p for p in pairs if p.source not in held]
    val = [p for p in pairs if p.source in held]
    if not train:
        raise UserError("every image went to validation: give more images or a smaller val_fraction")
    return train, val
