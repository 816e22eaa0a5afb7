"""The options of ``run("micro-sam APG", "...")`` and ``run("micro-sam Prompt", "...")``: declared once, in
:data:`OPTIONS`, and everything else made from that table — the parser every transport uses
(:func:`parse_options`), the plugin's dialog (the worker sends :func:`dialog_fields` to the Java side at start, which
holds no labels or defaults of its own), the in-process dialog, the Help page's rows (:func:`help_rows`) and the
option table in the docs (:func:`markdown_table`). A new option is one more :class:`Option`.

Values are read as ImageJ's own ``ij.Macro.getValue`` reads them (reproduced in :func:`macro_value`, which needs no
JVM): ``key=value`` up to the next space, ``key=[value with spaces]`` (nested brackets counted) or ``key='value'``
(for a value with an unbalanced ``]``); the key must not follow a letter and is matched in lower case, as
ImageJ's ``trimKey`` makes it. Segmentation parameters may also be given by micro-sam's own names
(``foreground_threshold=0.4``, ``distance_smoothing=2``).

Two things of the image are options without a key, as in ImageJ's own commands: the **current plane** (a stack is
segmented whole only with ``stack``) and the **selection** (an area selection restricts the command to it)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from microsam_fiji.core.errors import UserError

COMMANDS = {"apg": "micro-sam APG", "prompt": "micro-sam Prompt", "train": "micro-sam Train"}
KINDS = ("model", "choice", "number", "integer", "flag", "file", "folder", "pair", "text", "channel")
# when the dialog shows a field: always; an image with several planes (stack), z slices (zstack) or channels
SHOWN = ("always", "stack", "zstack", "channels", "never")


@dataclass(frozen=True)
class Option:
    """One option of the commands: its macro key and type, default, dialog label and what it does."""

    key: str
    """The macro key (``center=0.3``), also the first word of the dialog's label (ImageJ's Recorder key)."""
    kind: str
    """``model``, ``choice``, ``number``, ``integer``, ``flag`` (a word without value), ``file`` (a path),
    ``folder``, ``pair`` (``768,768``), ``text`` or ``channel`` (1-based; the dialog offers the image's channels by
    name)."""
    label: str
    """The dialog's label after the key; ``{planes}``, ``{slices}``: the image's planes and z slices."""
    help: str
    """What it is, for the Help page and the docs (one or two sentences)."""
    effect: str = ""
    """Which way it moves the result (thresholds), shown in the label and the docs."""
    commands: tuple[str, ...] = ("apg",)
    """The commands that take it (``apg``, ``prompt``)."""
    param: str | None = None
    """micro-sam's parameter it sets: its default is read from micro-sam (:func:`core.params.default_params`)."""
    default: Any = None
    """The default where no micro-sam parameter gives one (None: not set)."""
    choices: tuple[str, ...] = ()
    digits: int = 2
    shown: str = "always"
    """When the dialog shows it: ``always``, ``stack`` (several planes), ``zstack`` (several z slices),
    ``channels`` (several channels) or ``never`` (macro only)."""
    unset: str = "—"
    """What not giving it means, where it has no default value (the docs' default column)."""
    modes: tuple[str, ...] = ("apg", "ais")
    """The segmentation modes it applies to (``nms``: APG only)."""

    def default_value(self, mode: str = "apg") -> Any:
        """The default: micro-sam's for a parameter (read now, so it never drifts), else :attr:`default`."""
        if self.param is not None:
            from microsam_fiji.core.params import default_params

            for m in (mode, *self.modes):
                params = default_params(m)
                if self.param in params:
                    return params[self.param]
        return self.default


_THRESHOLD = "0 to 1"
OPTIONS: tuple[Option, ...] = (
    Option("model", "model", "", "a micro-sam checkpoint (.pt), a Model Zoo package (.zip, folder, rdf.yaml) or a "
           "micro-sam model name (names other than demo are downloaded on first use: needs network); not given: "
           "the default model (install-fiji --model, else the bundled demo).", commands=("apg", "prompt"),
           unset="the default model"),
    Option("mode", "choice", "(apg: SAM's masks from prompts the decoder suggests; ais: the decoder's own objects, "
           "faster, no SAM masks)", "apg: automatic prompt generation; ais: the instance decoder's segmentation "
           "without prompts. Not given: apg, or what the model's package says.", choices=("apg", "ais"),
           default="apg"),
    Option("foreground", "number", "threshold", "the foreground threshold (" + _THRESHOLD + ").",
           "higher: fewer objects, faint ones dropped; lower: faint objects and more background",
           param="foreground_threshold"),
    Option("center", "number", "distance threshold", "prompt regions are where the predicted distance to an "
           "object's center is below it (" + _THRESHOLD + ").", "lower: touching objects split; higher: merged",
           param="center_distance_threshold"),
    Option("boundary", "number", "distance threshold", "the same for the distance to the boundary (" + _THRESHOLD
           + ").", "lower: touching objects split; higher: merged", param="boundary_distance_threshold"),
    Option("min_size", "integer", "in pixels", "objects with fewer pixels are dropped.",
           "higher: small objects dropped", param="min_size", digits=0),
    Option("nms", "number", "threshold", "of two objects overlapping more than this (IoU), the lower-scored one is "
           "dropped (APG only).", "lower: fewer overlapping objects kept", param="nms_threshold", modes=("apg",)),
    Option("replace", "flag", "(first remove every ROI from the ROI Manager, yours too)", "empty the ROI Manager "
           "first, the ROIs you added too; without it the ROIs there stay and the new names continue their "
           "numbering.", commands=("apg", "prompt")),
    Option("stack", "flag", "(process all {planes} planes; else only the current one)", "segment every plane of a "
           "stack; without it only the current plane, as ImageJ's own filters do (a preview: always the current "
           "plane).", shown="stack"),
    Option("3d", "flag", "(3D objects: each object merged across the {slices} slices)", "3D objects: every plane "
           "segmented, then each object merged across z by micro-sam's merge_instance_segmentation_3d (as its "
           "automatic_3d_segmentation); one ROI per object and slice, all of one object named alike; a TZYX stack "
           "is a volume per time point. Implies stack.", shown="zstack"),
    Option("gap_closing", "integer", "(3d: slices; close gaps in an object up to this many slices; empty: off)",
           "with 3d: an object missing on up to this many slices between two others is closed across the gap "
           "(micro-sam's meaning; not given: off).", "higher: objects split by a missed slice joined", digits=0,
           shown="zstack", unset="off"),
    Option("min_z_extent", "integer", "(3d: slices; drop objects on fewer slices; empty: keep all)",
           "with 3d: objects that span fewer slices than this are dropped (micro-sam's meaning; not given: all "
           "kept).", "higher: short objects dropped", digits=0, shown="zstack", unset="all kept"),
    Option("channel", "channel", "(the channel to segment)", "the channel to segment, 1-based as in ImageJ, of an "
           "image with channels; not given: the current channel in Fiji, the first elsewhere. The Log names the "
           "channel segmented.", commands=("apg", "prompt"), shown="channels", unset="the current channel"),
    Option("rois", "file", "(also save the ROIs as this RoiSet.zip; empty: no file)", "also write the ROIs to this "
           "RoiSet.zip (replaced if it exists).", commands=("apg", "prompt")),
    Option("labels", "file", "(also save the label image as this TIFF; empty: no file)", "also write the label "
           "image to this TIFF (16-bit, 32-bit float beyond 65,535 objects; the image's calibration).",
           commands=("apg", "prompt")),
    Option("show", "flag", "(open the label image)", "open the label image as a new image.",
           commands=("apg", "prompt")),
    Option("tile", "pair", "(Y,X pixels; empty: automatic, tiles of 768,768 for planes over 1024 pixels)",
           "segment in tiles of this size (Y,X) with the halo around each; large planes are tiled without it.",
           commands=("apg", "prompt"), unset="automatic"),
    Option("halo", "pair", "(Y,X pixels; empty: 128,128)", "the overlap around each tile (Y,X).",
           commands=("apg", "prompt"), unset="128,128"),
    Option("engine", "choice", "", "fast (default: micro-sam's instances, faster) or micro-sam (micro-sam's own "
           "code).", choices=("fast", "micro-sam"), shown="never", unset="fast"),
    Option("ignore", "text", "", "keys of a calling macro's own to leave out, e.g. ignore=[input output cli] "
           "(what batch_folder.ijm passes with its whole argument).", commands=("apg", "prompt"), shown="never"),
    Option("prompts", "choice", "(selection: the current selection; roi-manager: its point, box and area ROIs)",
           "where the prompts come from: the current selection (default) or the ROI Manager's ROIs that are "
           "not objects of micro-sam.", commands=("prompt",), choices=("selection", "roi-manager"),
           default="selection"),
    Option("propagate", "flag", "(extend the object through the stack)", "extend each prompted object from its "
           "slice through the stack (micro-sam's segment_mask_in_volume); one name on every slice.",
           commands=("prompt",)),
)
_TRAIN = ("train",)
OPTIONS += (
    Option("images", "folder", "(a folder of images; empty: the open images and their ROIs)", "the training images: "
           "a folder (each x.tif paired with x_labels.tif or x_RoiSet.zip in labels=[...]); not given: every open "
           "image with its overlay's ROIs, the current image with the ROI Manager's where it has no overlay.",
           commands=_TRAIN, unset="the open images"),
    Option("labels", "folder", "(their label images or RoiSet.zip files; empty: beside the images)", "the folder "
           "of the images' labels (x_labels.tif or x_RoiSet.zip); not given: the images' folder.", commands=_TRAIN,
           unset="the images' folder"),
    Option("out", "file", "(the fine-tuned model to write, .pt)", "the checkpoint to write: micro-sam loads it, and "
           "model=[...] of micro-sam APG takes it.", commands=_TRAIN),
    Option("model", "model", "(to start from)", "the model to start from: a checkpoint, a Model Zoo package or a "
           "micro-sam name; not given: the default model.", commands=_TRAIN, unset="the default model"),
    Option("minutes", "number", "(time budget)", "the time budget: training stops at the end of the last epoch that "
           "fits.", "longer: usually better, up to the data's worth", commands=_TRAIN, default=15.0, digits=1),
    Option("iterations", "integer", "(empty: as many as the budget allows)", "iterations to train; with minutes "
           "whichever ends first.", commands=_TRAIN, digits=0, unset="the budget's"),
    Option("patch", "integer", "(pixels; empty: the image side up to 1024)", "the training patch's side.",
           commands=_TRAIN, digits=0, unset="the images' side up to 1024"),
    Option("validation", "number", "(share of the images held out; 0: validate on the training images)",
           "the share of the images held out to validate on (needs 2 images or more when above 0).",
           commands=_TRAIN, default=0.2, digits=2),
    # the CLI's --objects / --prompt-rounds / --no-eval: what an iteration costs on a laptop's CPU
    Option("objects", "integer", "(per iteration; empty: 5 on a CPU, 25 on a GPU)", "objects sampled per "
           "training iteration (micro-sam's n_objects_per_batch).", "fewer: faster iterations, noisier steps",
           commands=_TRAIN, digits=0, unset="5 on a CPU, 25 on a GPU"),
    Option("prompt_rounds", "integer", "(of iterative prompting; empty: 4 on a CPU, 8 on a GPU)", "rounds of "
           "micro-sam's iterative prompting per iteration (its n_sub_iteration).", "fewer: faster iterations",
           commands=_TRAIN, digits=0, unset="4 on a CPU, 8 on a GPU"),
    Option("no_evaluation", "flag", "(skip APG's mSA on the validation images before and after)", "skip measuring "
           "APG's mSA on the validation images with the start model and the result (two APG runs per image).",
           commands=_TRAIN),
    Option("channel", "channel", "(of multi-channel images)", "the channel of multi-channel images, 1-based; not "
           "given: the current channel of an open image, the first of a file.", commands=_TRAIN, shown="channels",
           unset="the current channel"),
    Option("describe", "text", "(what the images are, for the model's provenance)", "a sentence about the "
           "training data (what, microscope, who annotated): export records it.", commands=_TRAIN),
    Option("resume", "flag", "(continue the stopped run that writes out)", "continue a run that was stopped (Esc) "
           "and wrote out=[...].", commands=_TRAIN),
    Option("overwrite", "flag", "(replace out if it exists)", "replace an existing out=[...].", commands=_TRAIN),
)
BY_COMMAND = {command: {o.key: o for o in OPTIONS if command in o.commands} for command in COMMANDS}


def options_of(command: str = "apg") -> list[Option]:
    """The options ``command`` (``apg``, ``prompt`` or ``train``) takes, in the dialog's order.

    Args:
        command: ``apg``, ``prompt`` or ``train``.

    Returns:
        The options."""
    return list(BY_COMMAND[command].values())


def flags_of(command: str = "apg") -> tuple[str, ...]:
    """The keys that are words without a value (``replace``)."""
    return tuple(o.key for o in options_of(command) if o.kind == "flag")


def keys_of(command: str = "apg") -> tuple[str, ...]:
    """The keys that take a value and are no segmentation parameter (``model``, ``rois``)."""
    return tuple(o.key for o in options_of(command) if o.kind != "flag" and o.param is None)


def dialog_label(option: Option) -> str:
    """The dialog's label: the key first (what the Recorder and a macro write), then what it is and does."""
    text = f"{option.key} {option.label}".strip()
    return f"{text} ({option.effect})" if option.effect else text


def dialog_fields(command: str = "apg", mode: str = "apg") -> list[dict[str, Any]]:
    """The dialog of ``command`` as data: what the plugin's worker sends to the Java side at start (which renders
    it and holds no labels or defaults of its own) and what the in-process dialog renders.

    Args:
        command: ``apg`` or ``prompt``.
        mode: the mode whose parameter defaults the fields show.

    Returns:
        One dict per field, in order: ``key``, ``kind``, ``label``, ``default`` (None: empty), ``digits``,
        ``choices``, ``shown`` (``always``, ``stack``)."""
    fields = []
    for option in options_of(command):
        if option.shown == "never":
            continue
        fields.append({"key": option.key, "kind": option.kind, "label": dialog_label(option),
                       "default": option.default_value(mode), "digits": option.digits,
                       "choices": list(option.choices), "shown": option.shown})
    return fields


def _default_text(option: Option) -> str:
    value = option.default_value()
    if option.kind == "flag":
        return "off"
    return option.unset if value in (None, "") else str(value)


def help_rows(command: str = "apg") -> str:
    """The Help page's list of the options (HTML ``<li>`` rows): key, default, what it does, which way.

    Args:
        command: ``apg`` or ``prompt``.

    Returns:
        The rows, for the page's ``{options}`` placeholder."""
    import html

    rows = []
    for option in options_of(command):
        default = _default_text(option)
        way = f" <i>{html.escape(option.effect)}</i>." if option.effect else ""
        given = "flag" if option.kind == "flag" else "default " + html.escape(default)
        rows.append(f"<li><b>{option.key}</b> ({given}): {html.escape(option.help)}{way}</li>")
    return "\n".join(rows)


def markdown_table(command: str = "apg") -> str:
    """The docs' table of the options (Markdown), made from :data:`OPTIONS`; a test checks the docs hold it.

    Args:
        command: ``apg`` or ``prompt``.

    Returns:
        The table."""
    lines = ["| option | default | what it does | which way it moves the result |", "|---|---|---|---|"]
    for option in options_of(command):
        key = option.key if option.kind == "flag" else f"{option.key}=…"
        dialog = "" if option.shown != "never" else " (macro only)"
        lines.append(f"| `{key}` | {_default_text(option)} | {option.help}{dialog} | {option.effect or ''} |")
    return "\n".join(lines)


_KEY = re.compile(r"(?:^|\s)([A-Za-z0-9_][\w.\-]*)=")


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
    volume: bool = False  # micro-sam APG `3d`: 3D objects (merged across z)
    values: dict[str, Any] = field(default_factory=dict)  # what has no attribute of its own (micro-sam Train's)
    gap_closing: int | None = None
    min_z_extent: int | None = None
    channel: int | None = None  # 1-based; None: the transport's current channel, else the first


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


# MacroOptions' attribute for a key, where the two differ
_ATTRIBUTE = {"tile": "tile_shape", "3d": "volume"}


def parse_options(options: str | None, command: str = "apg") -> MacroOptions:
    """Macro options -> :class:`MacroOptions`; unknown keys, flags with values and empty values are refused.

    Args:
        options: the option string as ImageJ hands it over.
        command: ``"apg"`` (``micro-sam APG``) or ``"prompt"`` (``micro-sam Prompt``, which takes no
            segmentation parameters but ``prompts=`` and ``propagate``): which of :data:`OPTIONS` apply.

    Returns:
        The parsed options."""
    from microsam_fiji.core.params import ALIASES, default_params

    prompt = command != "apg"  # only APG takes segmentation parameters
    flags, option_keys = flags_of(command), keys_of(command)
    opts = MacroOptions()
    if not options or not str(options).strip():
        return _with_defaults(opts, command)
    text = str(options)
    ignored = macro_value(text, "ignore", None)
    if ignored is not None:  # a calling macro's own keys (batch_folder.ijm's input, output, cli), then ignore= itself
        text = without_keys(without_keys(text, ignored.split()), ["ignore"])
    _check_brackets(_without_quoted(text))
    unbracketed = _without_brackets(_without_quoted(text))
    keys = _KEY.findall(unbracketed)
    words = {w for w in unbracketed.split() if "=" not in w}
    for word in sorted(words - set(flags)):
        raise UserError(f"unknown option '{word}': flags are {', '.join(flags)}; other options take a value "
                        "(key=value)")
    for flag in flags:
        attribute = _ATTRIBUTE.get(flag, flag)
        if hasattr(opts, attribute):
            setattr(opts, attribute, flag in words)
        else:
            opts.values[flag] = flag in words
    known_params = set() if prompt else set(default_params("apg")) | set(default_params("ais")) | set(ALIASES)
    for key in keys:
        value = macro_value(text, key, None)
        value = None if value is None else value.strip()
        if value == "" and key.lower() == "model":
            continue  # an empty model field: the default model
        if value in (None, ""):
            raise UserError(f"option '{key}=' has no value: write {key}=VALUE (use [...] around values with spaces, "
                            f"'...' around values with a ']')")
        lower = key.lower()
        if lower in option_keys:
            _set(opts, BY_COMMAND[command][lower], key, value)
        elif lower.replace("-", "_") in known_params:
            opts.params[lower] = value
        elif lower in flags:
            raise UserError(f"option '{key}' is a flag: write just '{key}', without a value")
        else:
            params = "" if prompt else f" or a segmentation parameter ({', '.join(ALIASES)}, min_size, ...)"
            raise UserError(f"unknown option '{key}' for {COMMANDS[command]}: use "
                            f"{', '.join(o.key for o in options_of(command) if o.param is None)}{params}")
    return _with_defaults(opts, command)


def _with_defaults(opts: MacroOptions, command: str) -> MacroOptions:
    """The table's defaults of the options without an attribute of their own (micro-sam Train's ``minutes``,
    ``validation``) into ``opts.values`` where not given, so that a caller reads them from the one table."""
    for option in options_of(command):  # (micro-sam's parameters and the flags have no table default)
        if option.default is not None and not hasattr(opts, _ATTRIBUTE.get(option.key, option.key)):
            opts.values.setdefault(option.key, option.default)
    return opts


def _set(opts: MacroOptions, option: Option, key: str, value: str) -> None:
    """One option's value into ``opts`` (its attribute, else ``opts.values``), checked as its kind says."""
    attribute = _ATTRIBUTE.get(option.key, option.key)
    if not hasattr(opts, attribute):
        opts.values[option.key] = _typed(option, key, value)
        return
    if option.kind == "pair":
        setattr(opts, _ATTRIBUTE.get(option.key, option.key), _pair(key, value))
        return
    if option.kind in ("integer", "channel") and option.param is None:
        try:
            number = int(value)
        except ValueError:
            number = -1
        if number < (1 if option.kind == "channel" else 0):
            what = "a channel number (1, 2, ...; 1-based as in ImageJ)" if option.kind == "channel" else \
                "a whole number of slices (0 or more)"
            raise UserError(f"{key}={value}: give {what}")
        setattr(opts, option.key, number)
        return
    if option.kind == "choice":
        if option.key == "mode":
            from microsam_fiji.core.params import check_mode

            value = check_mode(value)
        elif option.key == "engine":
            from microsam_fiji.engines.registry import check_engine

            check_engine(value)
        elif value not in option.choices:
            raise UserError(f"{key}={value}: use {' or '.join(f'{key}={c}' for c in option.choices)}")
    setattr(opts, _ATTRIBUTE.get(option.key, option.key), value)


def _check_brackets(text: str) -> None:
    """A ``]`` inside a bracketed value ends it early (ImageJ reads ``model=[/data/mod]els/m.pt]`` as
    ``/data/mod``): refused, naming the quotes that hold such a value."""
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
            if depth == 1:
                start = i
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0 and i + 1 < len(text) and not text[i + 1].isspace():
                key = re.findall(r"([A-Za-z_][\w.\-]*)=$", text[:start])
                name = key[0] if key else "option"
                # what was probably meant: up to the first ']' that a space or the end follows
                end = next((j for j in range(i + 1, len(text)) if text[j] == "]"
                            and (j + 1 == len(text) or text[j + 1].isspace())), i)
                meant = text[start + 1:end]
                raise UserError(f"{name}=[{meant}]: the value holds a ']', which ends [...] early: write it in "
                                f"quotes, {name}='{meant}'")


def _typed(option: Option, key: str, value: str) -> Any:
    """A value of an option without an attribute of its own, as its kind says (a number, a whole number)."""
    if option.kind == "number":
        try:
            return float(value)
        except ValueError:
            raise UserError(f"{key}={value}: give a number, e.g. {key}={option.default or 1}") from None
    if option.kind in ("integer", "channel"):
        if not value.isdigit():
            raise UserError(f"{key}={value}: give a whole number, e.g. {key}=1")
        return int(value)
    return value


def _without_quoted(text: str) -> str:
    """``text`` with each ``key='value'`` emptied to ``key=''`` (a quoted value may hold brackets and spaces)."""
    return re.sub(r"(=)'[^']*'", r"\1''", text)


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
