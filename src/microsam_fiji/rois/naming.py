"""Names that stay unique in the ROI Manager across calls.

Each call names its objects ``cell-0001``, ``cell-0002``, … (ids of its own labels image). Added to a ROI Manager
that already holds an earlier call's ``cell-0001``, the names would repeat; ImageJ keeps its own numbering going
instead, and so do we: the new names continue after the largest number the ROI Manager has for that prefix. The
ROIs' ``id`` property stays the id in the call's labels image (what ``labels=[…]`` wrote)."""
from __future__ import annotations

import re
from collections.abc import Iterable

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
