"""Packages and ROI sets rewritten the way a stranger (or a broken download) would hand them over."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path


def rewrite_zip(src: Path, dst: Path, drop=(), replace=None) -> Path:
    """Copy package ``src`` to ``dst`` leaving out members ``drop`` and replacing members' bytes.

    Args:
        src: the zip to copy.
        dst: where the copy goes.
        drop: member names left out.
        replace: member name -> new bytes.

    Returns:
        ``dst``."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            # stored, not deflated: re-compressing 200 MB of weights would take most of a minute
            zout.writestr(item.filename, replace.get(item.filename, zin.read(item.filename)),
                          compress_type=zipfile.ZIP_STORED)
    return dst


def rdf_with_hash(src: Path, old_hash: str, new_hash: str) -> bytes:
    """The package's rdf.yaml with one sha256 replaced (a tampered file whose hash was updated to match)."""
    with zipfile.ZipFile(src) as z:
        text = z.read("rdf.yaml").decode()
    assert old_hash in text, "the member's sha256 is recorded in rdf.yaml"
    return text.replace(old_hash, new_hash).encode()


def zip_bomb_member(zout: zipfile.ZipFile, name: str, size: int, chunk: int = 16 << 20) -> str:
    """Write member ``name`` as ``size`` zero bytes, deflated (a few hundred bytes per MiB), streamed in
    ``chunk``s so that building the bomb holds little memory.

    Returns:
        The sha256 of the expanded member (what a tampered rdf.yaml records for it)."""
    digest = hashlib.sha256()
    zeros = bytes(chunk)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zout.open(info, "w", force_zip64=True) as member:
        left = size
        while left:
            part = zeros[:min(chunk, left)]
            member.write(part)
            digest.update(part)
            left -= len(part)
    return digest.hexdigest()
