"""What a batch is run with, checked in full before any image is read or the model is loaded."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.backends import BACKENDS

_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Settings:
    """The options of ``microsam-fiji segment`` that shape the result of every image (picklable: it travels to
    Dask workers). ``params`` holds the user's overrides as given (names may be aliases, values text)."""

    model: str | None = None
    model_type: str | None = None
    mode: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    axes: str | None = None
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None
    tile_threshold: int | None = None
    device: str | None = None
    engine: str | None = None
    rois: bool = True
    backend: str | None = None  # models/backends: torch or onnx (None: $MICROSAM_FIJI_BACKEND, the device's)
    volume: bool = False  # 3D objects merged across z (engines/volume.py)
    gap_closing: int | None = None  # micro-sam's merge options (volume only)
    min_z_extent: int | None = None
    channel: int | None = None  # 1-based; None: the first of several, with a warning

    def checked(self) -> "Settings":
        """These settings with the engine made explicit, or a UserError naming the bad option and its fix."""
        from microsam_fiji.core.params import check_mode, check_tiling, resolve_params
        from microsam_fiji.engines.registry import check_engine
        from microsam_fiji.engines.segment import DEFAULT_TILE_THRESHOLD
        from microsam_fiji.engines.volume import check_merge_options

        mode = check_mode(self.mode) if self.mode else None
        if mode:
            resolve_params(mode, self.params)
        else:  # the model decides the mode: each name must belong to one of them, with a valid value
            resolve_params("apg", self.params, strict=False)
            resolve_params("ais", self.params, strict=False)
        engine = check_engine(self.engine)
        axes = self.axes.upper() if self.axes else None
        if axes is not None:
            if set(axes) - set("XYZTCS") or len(set(axes)) != len(axes) or not {"X", "Y"} <= set(axes):
                raise UserError(f"--axes '{self.axes}' is not an axes string: one letter of XYZTCS per axis, Y and "
                                "X included, e.g. --axes TZYX")
        check_tiling(self.tile_shape, self.halo)
        threshold = DEFAULT_TILE_THRESHOLD if self.tile_threshold is None else int(self.tile_threshold)
        if threshold < 1:
            raise UserError(f"--tile-threshold {threshold} must be at least 1")
        if self.backend is not None and self.backend not in BACKENDS:
            raise UserError(f"unknown backend '{self.backend}': use one of {', '.join(BACKENDS)}")
        if self.device is not None and not _DEVICE.match(self.device):
            raise UserError(f"unknown device '{self.device}': use cpu, cuda or cuda:N")
        try:
            check_merge_options(self.volume, self.gap_closing, self.min_z_extent)
        except UserError as err:  # the CLI's names for the options
            raise UserError(str(err).replace("gap_closing", "--gap-closing").replace("min_z_extent", "--min-z-extent")
                            ) from None
        if self.channel is not None and (isinstance(self.channel, bool) or not isinstance(self.channel, int)
                                         or self.channel < 1):
            raise UserError(f"--channel {self.channel}: give a channel number, 1 for the first (as in ImageJ)")
        if self.model_type is not None:
            from microsam_fiji.models.model import MODEL_TYPES

            if self.model_type not in MODEL_TYPES:
                raise UserError(f"unknown model type '{self.model_type}': use one of {', '.join(MODEL_TYPES)}")
        return Settings(model=self.model, model_type=self.model_type, mode=mode, params=dict(self.params),
                        axes=axes, tile_shape=self.tile_shape, halo=self.halo, tile_threshold=threshold,
                        device=self.device, engine=engine, rois=self.rois, backend=self.backend,
                        volume=bool(self.volume), gap_closing=self.gap_closing, min_z_extent=self.min_z_extent,
                        channel=self.channel)

    def stamp_key(self) -> dict[str, Any]:
        """Everything that decides the labels: equal keys mean an existing output can be kept."""
        from importlib.metadata import version

        from microsam_fiji.core.params import canonical_name

        key = asdict(self)
        key.pop("device")  # the same model on another device gives the same objects: not worth a rerun
        key.pop("backend")  # as for the device: held to the same instances by tests/test_backends.py
        key["params"] = {canonical_name(k): _number_or_text(v) for k, v in sorted(self.params.items())}
        key["model"] = model_identity(self.model)
        key["tile_shape"] = list(self.tile_shape) if self.tile_shape else None
        key["halo"] = list(self.halo) if self.halo else None
        key["versions"] = {name: _version(version, name) for name in ("micro-sam-fiji", "micro_sam")}
        # options at their defaults stay out of the key: the stamps of 2D runs before they existed still hold
        for name in ("volume", "gap_closing", "min_z_extent", "channel"):
            if not key[name]:
                key.pop(name)
        return key


def _version(version, name: str) -> str:
    try:
        return version(name)
    except Exception:  # noqa: BLE001 - not installed as a distribution (a source checkout)
        return "unknown"


def _number_or_text(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).strip().lower()


def model_identity(source: str | os.PathLike | None) -> str:
    """The model as a stamp records it: a file by absolute path, size and modification time (hashing a
    2.5 GB checkpoint per run would cost more than it saves), a registry name or 'demo' as is."""
    if source is None:
        return "demo"
    path = Path(source).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            stats = [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
            return f"{path} {hashlib.sha1(repr(stats).encode()).hexdigest()[:12]}"
        stat = path.stat()
        return f"{path} {stat.st_size} {stat.st_mtime_ns}"
    return str(source)
