"""APG / AIS parameters: defaults taken from micro-sam's own ``generate`` signatures, user overrides parsed
from ``key=value`` text (CLI ``--param``, Fiji macro options, package metadata) and validated in one place."""
from __future__ import annotations

import inspect
import math
from typing import Any, Iterable, Mapping

import numpy as np

from microsam_fiji.core.errors import UserError

MODES = ("apg", "ais")

# Short names used in Fiji macro options and on the CLI; the long names are micro-sam's.
ALIASES = {
    "foreground": "foreground_threshold",
    "center": "center_distance_threshold",
    "boundary": "boundary_distance_threshold",
    "nms": "nms_threshold",
    "minsize": "min_size",
}

# generate() arguments that are plumbing, not segmentation parameters.
_NOT_PARAMS = {"self", "output_mode", "prompt_function", "segmentation", "tile_shape", "halo", "n_threads",
               "optimize_memory"}

_UNIT_INTERVAL = {"foreground_threshold", "center_distance_threshold", "boundary_distance_threshold",
                  "nms_threshold"}
_NON_NEGATIVE = {"min_size", "foreground_smoothing", "distance_smoothing"}
_POSITIVE_INT = {"batch_size"}
# the image encoder works on 16-pixel patches and runs once per tile: smaller tiles are useless and countless
MIN_TILE = 64


def _signature_defaults(func) -> dict[str, Any]:
    return {
        name: p.default
        for name, p in inspect.signature(func).parameters.items()
        if name not in _NOT_PARAMS and p.default is not inspect.Parameter.empty
    }


_GENERATORS = {"apg": "AutomaticPromptGenerator", "ais": "InstanceSegmentationWithDecoder"}


def default_params(mode: str) -> dict[str, Any]:
    """micro-sam's defaults for ``mode``, read from its ``generate`` signature so they never drift.

    Read from the source of ``micro_sam.instance_segmentation`` rather than by importing it: the import costs
    2-3 s (torch_em's trainer, tensorboard) that a cold APG run with cached ONNX graphs never needs otherwise.

    Args:
        mode: ``apg`` or ``ais``.

    Returns:
        Parameter name -> default."""
    mode = check_mode(mode)
    defaults = _defaults_from_source(_GENERATORS[mode])
    if defaults is None:  # a micro-sam whose source we cannot read (a zip import, compiled): ask the class itself
        from micro_sam import instance_segmentation

        defaults = _signature_defaults(getattr(instance_segmentation, _GENERATORS[mode]).generate)
    return defaults


def _defaults_from_source(class_name: str) -> dict[str, Any] | None:
    import ast
    import importlib.util

    try:
        spec = importlib.util.find_spec("micro_sam.instance_segmentation")
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
        func = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "generate")
        positional = func.args.posonlyargs + func.args.args
        pairs = list(zip(positional[len(positional) - len(func.args.defaults):], func.args.defaults))
        pairs += [(a, d) for a, d in zip(func.args.kwonlyargs, func.args.kw_defaults) if d is not None]
        return {a.arg: ast.literal_eval(d) for a, d in pairs if a.arg not in _NOT_PARAMS}
    except (AssertionError, OSError, SyntaxError, StopIteration, ValueError, ImportError):
        return None


def check_mode(mode: str) -> str:
    m = str(mode).lower()
    if m not in MODES:
        raise UserError(f"unknown mode '{mode}': use one of {', '.join(MODES)}")
    return m


def _number(name: str, value: Any, default: Any) -> float | int:
    """A real, finite number (Python or NumPy scalar), or a one-line UserError naming the parameter."""
    example = "auto" if default is None else default
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise UserError(f"parameter {name}={_shown(value)} is not a number: give one number, e.g. {name}={example}")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:  # an int beyond float's range
        finite = False
    if not finite:
        raise UserError(f"parameter {name}={_shown(value)} is not a finite number: give a number, e.g. "
                        f"{name}={example}")
    return int(value) if isinstance(value, (int, np.integer)) else float(value)


def _shown(value: Any) -> str:
    """``value`` for a message: one line, at most 60 characters."""
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."


def _parse_value(name: str, text: Any, default: Any) -> Any:
    """``text`` (a string, or a value from Python) as the type of ``default``; non-finite numbers, ``None`` where
    a number is wanted, lists and other objects are refused with one line."""
    if isinstance(default, bool):
        if isinstance(text, (bool, np.bool_)):
            return bool(text)
        low = str(text).strip().lower() if isinstance(text, (str, int, np.integer)) else None
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise UserError(f"parameter {name}={_shown(repr(text) if isinstance(text, str) else text)} is not a "
                        "boolean: use true or false")
    if isinstance(text, str):
        t = text.strip()
        if default is None:  # mask_threshold: a number, or micro-sam's keyword "auto" (local Otsu per mask)
            if t.lower() in ("none", ""):
                return None
            if t.lower() == "auto":
                return "auto"
        try:
            value: Any = float(t)
        except ValueError:
            hint = ", auto or none" if default is None else ""
            raise UserError(f"parameter {name}={text!r} is not a number: use a number{hint}") from None
    elif text is None and default is None:
        return None
    else:
        value = text
    value = _number(name, value, default)
    if isinstance(default, int):
        if float(value) != int(value):
            raise UserError(f"parameter {name}={text!r} must be a whole number")
        return int(value)
    return float(value)


def _check_range(name: str, value: Any) -> None:
    if isinstance(value, str) or value is None:  # mask_threshold=auto / none
        return
    if name in _UNIT_INTERVAL and not 0.0 <= value <= 1.0:
        raise UserError(f"parameter {name}={value} is out of range: use a value between 0 and 1")
    if name in _NON_NEGATIVE and value < 0:
        raise UserError(f"parameter {name}={value} must not be negative")
    if name in _POSITIVE_INT and value < 1:
        raise UserError(f"parameter {name}={value} must be at least 1")


def canonical_name(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return ALIASES.get(key, key)


def resolve_params(mode: str, overrides: Mapping[str, Any] | None = None, *, strict: bool = True) -> dict[str, Any]:
    """Defaults for ``mode`` updated with ``overrides`` (names may be aliases, values text or numbers).

    With ``strict`` an unknown name is an error; otherwise names that belong to the other mode are ignored
    (so one option string can carry parameters for both modes)."""
    mode = check_mode(mode)
    params = default_params(mode)
    other = set(default_params("ais" if mode == "apg" else "apg"))
    for raw_name, raw_value in (overrides or {}).items():
        name = canonical_name(raw_name)
        if name not in params:
            if not strict and name in other:
                continue
            valid = ", ".join(sorted(params))
            raise UserError(f"unknown {mode} parameter '{raw_name}': valid names are {valid}")
        value = _parse_value(name, raw_value, params[name])
        _check_range(name, value)
        params[name] = value
    return params


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["center=0.4", "min_size=30"]`` -> ``{"center": "0.4", "min_size": "30"}``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"parameter '{item}' is not of the form name=value (e.g. center=0.4)")
        name, value = item.split("=", 1)
        if not name.strip():
            raise UserError(f"parameter '{item}' has no name (write name=value)")
        out[name.strip()] = value.strip()
    return out


def parse_pair(text: str) -> tuple[int, int]:
    """``768,768``, ``768x768`` or ``768`` -> (768, 768): tile shapes and halos on the CLI and in macros.

    Args:
        text: one or two whole numbers, not negative.

    Returns:
        The pair (Y, X).

    Raises:
        UserError: naming the form to write."""
    parts = [p for p in str(text).replace("x", ",").split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"'{text}' is not a pair of whole numbers like 768,768") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2 or min(values) < 0:
        raise UserError(f"'{text}' is not a pair of whole numbers like 768,768")
    return values[0], values[1]


def check_tiling(tile_shape, halo) -> None:
    """Refuse tiles the image encoder cannot use and negative halos, in one line naming the fix.

    Args:
        tile_shape: (Y, X) or None; halo: (Y, X) or None.

    Raises:
        UserError: a tile side below :data:`MIN_TILE` pixels, a halo below 0, or not two whole numbers each."""
    for what, value, least in (("tile shape", tile_shape, MIN_TILE), ("halo", halo, 0)):
        if value is None:
            continue
        try:
            values = [int(v) for v in value]
            whole = len(values) == 2 and all(float(v) == int(v) for v in value)
        except (TypeError, ValueError, OverflowError):
            whole = False
        if not whole:
            raise UserError(f"{what} {value!r} must be two whole numbers (Y,X), e.g. 768,768")
        if min(values) < least and what == "halo":
            raise UserError(f"halo {values[0]},{values[1]} must not be negative, e.g. 128,128")
        if min(values) < least:
            raise UserError(f"tile shape {values[0]},{values[1]} is too small: tiles need at least {MIN_TILE} pixels "
                            "per side (the image encoder sees 16-pixel patches and runs once per tile, so tinier "
                            "tiles find nothing and never end): use e.g. 512,512 or leave tiling at its default")
