"""The option string of ``run("micro-sam APG", "...")``: one grammar for every transport.

The in-process command (JPype listener) and the ImageJ plugin's Python worker both hand the macro's option
string to :func:`parse_options`, so a macro means the same thing whichever way Fiji was started. Values are
read as ImageJ's own ``ij.Macro.getValue`` reads them (reproduced in :func:`macro_value`, which needs no JVM):
``key=value`` up to the next space, ``key=[value with spaces]`` (nested brackets counted) or ``key='value'``;
the key must not follow a letter and is matched in lower case, as ImageJ's ``trimKey`` makes it.

Options (all optional):

* ``model=[...]``  checkpoint, Model Zoo package (.zip) or micro-sam name; default: the session's (demo model)
* ``mode=apg|ais``  default: apg, or the package's mode
* ``foreground= center= boundary= min_size= nms=`` and any other micro-sam parameter by its own name
* ``replace``  clear the ROI Manager first (otherwise existing ROIs stay)
* ``stack``  segment every plane of a stack (slices and frames); without it only the current plane, as ImageJ's
  own filters do (the dialog's "stack" checkbox; the Recorder records ``stack``). A preview: the current plane
* the current **selection**, when it is an area (rectangle, oval, polygon, freehand, composite), restricts the
  command to it: objects only inside it (cut at its edge; smaller than ``min_size`` there: dropped), ROIs and
  labels in the whole image's coordinates. Point and line selections are ignored; no option is needed
* ``rois=[path]``  also write the ROIs as a RoiSet.zip; ``labels=[path]``  also write the label image as TIFF
* ``show``  open the label image as a new image (it becomes the current image)
* ``tile=[768,768] halo=[128,128]``  tiling of large images; ``engine=...`` segmentation engine"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from microsam_fiji.core.errors import UserError

FLAGS = ("replace", "show", "stack")
OPTION_KEYS = ("model", "mode", "rois", "labels", "tile", "halo", "engine")
# ``micro-sam Prompt``: the same outputs and model, prompts instead of APG's thresholds
PROMPT_FLAGS = ("replace", "show", "propagate")
PROMPT_KEYS = ("model", "rois", "labels", "tile", "halo", "prompts")
PROMPT_SOURCES = ("selection", "roi-manager")
_KEY = re.compile(r"(?:^|\s)([A-Za-z_][\w.\-]*)=")


@dataclass
class MacroOptions:
    model: str | None = None
    mode: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    replace: bool = False
    show: bool = False
    rois: str | None = None
    labels: str | None = None
    tile_shape: tuple[int, int] | None = None
    halo: tuple[int, int] | None = None
    engine: str | None = None
    prompts: str | None = None  # micro-sam Prompt: selection (default) or roi-manager
    propagate: bool = False  # micro-sam Prompt: extend the object through the stack
    stack: bool = False  # micro-sam APG: every plane of a stack (default: the current plane)


def macro_value(options: str, key: str, default: str | None = None) -> str | None:
    """``ij.Macro.getValue(options, key, default)`` of ImageJ 1.x, character for character."""
    key = key.split(" ", 1)[0].split(":", 1)[0].lower() + "="
    if not options.endswith(" "):
        options += " "
    index = -1
    while True:  # the key must not be preceded by a letter
        index = options.find(key, index + 1)
        if index < 0:
            return default
        if index == 0 or not options[index - 1].isalpha():
            break
    rest = options[index + len(key):]
    if rest.startswith("'"):
        end = rest.find("'", 1)
        return default if end < 0 else rest[1:end]
    if rest.startswith("["):
        depth = 0
        for i, ch in enumerate(rest):
            depth += {"[": 1, "]": -1}.get(ch, 0)
            if depth == 0:
                return rest[1:i]
        return default
    end = rest.find(" ")
    return default if end < 0 else rest[:end]


def without_keys(options: str | None, keys) -> str:
    """``options`` without the ``key=value`` entries of ``keys`` (values read as :func:`macro_value` reads them):
    a macro's own keys (``cli=[...]``) before the rest is parsed as the command's.

    Args:
        options: a macro option string.
        keys: the keys to drop.

    Returns:
        The remaining option string."""
    text = str(options or "")
    for key in keys:
        value = macro_value(text, key, None)
        if value is None:
            continue
        for written in (f"{key}=[{value}]", f"{key}='{value}'", f"{key}={value}"):
            at = text.find(written)
            if at >= 0 and (at == 0 or not text[at - 1].isalpha()):
                text = (text[:at] + text[at + len(written):]).strip()
                break
    return text


def _without_brackets(text: str) -> str:
    """``text`` with each outermost ``[...]`` emptied to ``[]``, nested brackets counted as ``Macro.getValue``
    counts them (``model=[/data/[old] set/m.zip]`` is one value); an unclosed ``[`` empties the rest."""
    out, depth = [], 0
    for ch in text:
        if ch == "[":
            depth += 1
            if depth == 1:
                out.append(ch)
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                out.append(ch)
        elif depth == 0:
            out.append(ch)
    return "".join(out) + ("]" if depth else "")


def parse_options(options: str | None, command: str = "apg") -> MacroOptions:
    """Macro options -> :class:`MacroOptions`; unknown keys, flags with values and empty values are refused.

    Args:
        options: the option string as ImageJ hands it over.
        command: ``"apg"`` (``micro-sam APG``) or ``"prompt"`` (``micro-sam Prompt``, which takes no
            segmentation parameters but ``prompts=`` and ``propagate``).

    Returns:
        The parsed options."""
    from microsam_fiji.core.params import ALIASES, default_params

    prompt = command == "prompt"
    flags, option_keys = (PROMPT_FLAGS, PROMPT_KEYS) if prompt else (FLAGS, OPTION_KEYS)
    opts = MacroOptions()
    if not options or not str(options).strip():
        return opts
    text = str(options)
    unbracketed = _without_brackets(text)
    keys = _KEY.findall(unbracketed)
    words = {w for w in unbracketed.split() if "=" not in w}
    for word in sorted(words - set(flags)):
        raise UserError(f"unknown option '{word}': flags are {', '.join(flags)}; other options take a value "
                        "(key=value)")
    opts.replace = "replace" in words
    opts.show = "show" in words
    opts.propagate = "propagate" in words
    opts.stack = "stack" in words
    known_params = set() if prompt else set(default_params("apg")) | set(default_params("ais")) | set(ALIASES)
    for key in keys:
        value = macro_value(text, key, None)
        value = None if value is None else value.strip()
        if value == "" and key.lower() == "model":
            continue  # the dialog's empty model field, as the Recorder writes it: the default model
        if value in (None, ""):
            raise UserError(f"option '{key}=' has no value: write {key}=VALUE (use [...] around values with spaces)")
        lower = key.lower()
        if lower in option_keys:
            if lower in ("tile", "halo"):
                setattr(opts, "tile_shape" if lower == "tile" else "halo", _pair(key, value))
            else:
                setattr(opts, lower, value)
                if lower == "prompts" and value not in PROMPT_SOURCES:
                    raise UserError(f"prompts={value}: use prompts=selection (the current selection) or "
                                    "prompts=roi-manager")
                if lower == "engine":
                    from microsam_fiji.engines.registry import check_engine

                    check_engine(value)
        elif lower.replace("-", "_") in known_params:
            opts.params[lower] = value
        elif lower in flags:
            raise UserError(f"option '{key}' is a flag: write just '{key}', without a value")
        elif prompt:
            raise UserError(f"unknown option '{key}' for micro-sam Prompt: use prompts=selection|roi-manager, model, "
                            "replace, rois, labels, show, tile, halo or propagate")
        else:
            raise UserError(f"unknown option '{key}': use model, mode, replace, stack, rois, labels, show, tile, halo, "
                            f"engine or a segmentation parameter ({', '.join(ALIASES)}, min_size, ...)")
    return opts


def _pair(key: str, value: str) -> tuple[int, int]:
    from microsam_fiji.core.params import parse_pair

    try:
        return parse_pair(value)
    except UserError as err:
        raise UserError(f"option {key}: {err}") from None


def check_outputs(opts: MacroOptions) -> None:
    """Refuse output paths that cannot be written before any work is done (segmenting first would lose it)."""
    from microsam_fiji.core.writable import check_writable

    if opts.rois:
        if not opts.rois.lower().endswith(".zip"):
            raise UserError(f"rois=[{opts.rois}]: a ROI set is a .zip file: give a path ending in .zip")
        check_writable(opts.rois, "rois")
    if opts.labels:
        if not opts.labels.lower().endswith((".tif", ".tiff")):
            raise UserError(f"labels=[{opts.labels}]: the label image is written as TIFF: give a path ending in .tif")
        check_writable(opts.labels, "labels")


def for_mode(mode: str, params: dict) -> dict:
    """Drop parameters that belong only to the other mode (one recorded option string may carry both)."""
    from microsam_fiji.core.params import canonical_name, default_params

    valid = set(default_params(mode))
    return {k: v for k, v in params.items() if canonical_name(k) in valid}
