"""The ROI Manager's names and numbering, decided here for every transport (the plugin sends the names its ROI
Manager holds and adds what it gets back; the in-process command does the same in Python).

Each call names its objects ``cell-0001``, ``cell-0002``, … (ids of its own labels image). Added to a ROI Manager
that already holds an earlier call's ``cell-0001``, the names would repeat; ImageJ keeps its own numbering going
instead, and so do we: the new names continue after the largest number the ROI Manager has for that prefix
(:func:`continued_names`). The ROIs' ``id`` property stays the id in the call's labels image (what ``labels=[…]``
wrote). ``micro-sam Prompt`` numbers its new objects after the ROI Manager's objects (:func:`next_id`)."""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from roifile import ImagejRoi

# prefix-number, with the slice suffix an object found on several slices gets (``cell-0042-z003``)
NAME = re.compile(r"^(?P<prefix>.+)-(?P<number>\d+)(?P<suffix>-z\d+)?$")


def continued_names(existing: Iterable[str], names: list[str]) -> list[str]:
    """New names for ``names`` (one call's ROIs) that keep a ROI Manager holding ``existing`` free of repeats.

    Args:
        existing: the names already in the ROI Manager.
        names: the call's names, in order (one object may have the same name on several slices).

    Returns:
        ``names`` unchanged where none of them is taken; else each ``prefix-N[-zS]`` renumbered to
        ``prefix-(top + N)[-zS]``, ``top`` the largest number the ROI Manager has for that prefix (the zero padding
        kept). Names of another form stay as they are."""
    taken = set(existing)
    if not taken.intersection(names):
        return list(names)
    top: dict[str, int] = {}
    for name in taken:
        match = NAME.match(name)
        if match:
            top[match["prefix"]] = max(top.get(match["prefix"], 0), int(match["number"]))
    out = []
    for name in names:
        match = NAME.match(name)
        if match is None:
            out.append(name)
            continue
        width = len(match["number"])
        number = top.get(match["prefix"], 0) + int(match["number"])
        out.append(f"{match['prefix']}-{number:0{width}d}{match['suffix'] or ''}")
    return out


def top_number(names: Iterable[str], prefix: str = "cell") -> int:
    """The largest ``N`` among names ``prefix-N[-zS]`` (0 when there is none).

    Args:
        names: ROI names (the ROI Manager's).
        prefix: the name prefix to look for.

    Returns:
        The number; a prompt's new objects start after it."""
    numbers = [int(m["number"]) for m in map(NAME.match, names) if m and m["prefix"] == prefix]
    return max(numbers, default=0)


def is_our_object(roi: ImagejRoi) -> bool:
    """Whether ``roi`` is an object the commands added (``cell-0001`` with ``id`` and ``area`` properties): the
    ROI Manager's prompts are its other ROIs.

    Args:
        roi: a ROI of the ROI Manager.

    Returns:
        True for our objects."""
    properties = roi.properties if roi.props else {}
    return "id" in properties and "area" in properties


def next_id(rois: list[ImagejRoi]) -> int:
    """The id after the largest of our objects among ``rois`` (the ROI Manager's), by their ``id`` property and by
    their names (a later APG call's names continue the numbering, its ``id`` start at 1): new names stay unique.

    Args:
        rois: the ROI Manager's ROIs.

    Returns:
        The first free id."""
    ids = [int(roi.properties["id"]) for roi in rois if is_our_object(roi)]
    by_name = top_number(roi.name for roi in rois if is_our_object(roi) and roi.name)
    return max(max(ids, default=0), by_name) + 1


def for_manager(rois: list[ImagejRoi], existing: Iterable[str], replace: bool) -> list[ImagejRoi]:
    """A call's ROIs named for the ROI Manager they go into: unchanged with ``replace`` (it is emptied first),
    else with :func:`continued_names` after the names it holds.

    Args:
        rois: the call's ROIs.
        existing: the names the ROI Manager holds now.
        replace: whether the ROI Manager is emptied before they are added.

    Returns:
        The ROIs (renamed copies where a name changed)."""
    if replace:
        return list(rois)
    names = [roi.name or "" for roi in rois]
    return [roi if new == old else dataclasses.replace(roi, name=new)
            for roi, old, new in zip(rois, names, continued_names(existing, names))]
