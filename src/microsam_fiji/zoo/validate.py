"""``microsam-fiji validate``: bioimageio.spec validation, bioimageio.core ``test_model`` for every weight format
(offline), the micro-sam parts (metadata, hash-checked attachment) and what the Model Zoo asks of an upload
beyond ``bioimageio test`` (covers, documentation sections, no ``id``, people, built-in processing, licence
notes), summed up on one screen: each point ok, a warning or failed."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from microsam_fiji.core.errors import UserError


@dataclass
class Check:
    name: str
    passed: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    warning: bool = False  # an upload point not met: shown as [warning], does not fail the package

    @property
    def status(self) -> str:
        return "FAILED" if not self.passed else "warning" if self.warning else "ok"


FOREIGN = "valid Model Zoo model, not a micro-sam package: micro-sam-fiji cannot run APG with it"


@dataclass
class ValidationResult:
    path: Path
    checks: list[Check]
    foreign: bool = False  # a Model Zoo model without config.micro_sam (not made for APG)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def format(self, max_lines: int = 3) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        if self.foreign:
            verdict = FOREIGN if self.passed else "FAILED (not a micro-sam package either)"
        lines = [f"{self.path.name}: {verdict}"]
        for check in self.checks:
            lines.append(f"  [{check.status}] {check.name}")
            lines += [f"      error: {e}" for e in check.errors[:max_lines]]
            if len(check.errors) > max_lines:
                lines.append(f"      ... {len(check.errors) - max_lines} more errors")
            lines += [f"      warning: {w}" for w in check.warnings[:max_lines]]
            if len(check.warnings) > max_lines:
                lines.append(f"      ... {len(check.warnings) - max_lines} more warnings")
        return "\n".join(lines)


def _short(text: str, width: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 3] + "..."


def _micro_sam_check(path: Path) -> Check:
    from microsam_fiji.models.package import (
        is_micro_sam_export,
        micro_sam_export_checkpoint,
        read_description,
        read_package,
    )

    try:
        descr = read_description(path)
        if is_micro_sam_export(descr):
            _, model_type = micro_sam_export_checkpoint(descr, path.name)
            return Check(f"micro-sam's own export ({model_type}, instance decoder present; APG/AIS with micro-sam's "
                         "defaults)", True)
        contents = read_package(path, descr)  # reads config.micro_sam, its parameters included
    except UserError as err:
        if "without micro-sam APG metadata" in str(err):
            return Check("not a micro-sam package (no config.micro_sam): micro-sam-fiji cannot run APG with it",
                         True, warning=True)
        return Check("micro-sam metadata and hash-checked weights/attachment", False, [str(err)])
    cfg = contents.config
    return Check(f"micro-sam metadata ({cfg.model_type}, default {cfg.default_mode.upper()}) "
                 "and hash-checked weights/attachment", True)


def _failed_for_network_only(summary) -> bool:
    from microsam_fiji.models.network import NETWORK_ERROR_TEXTS

    errors = [e.msg for d in summary.details for e in d.errors]
    format_errors = [e.msg for d in summary.details if "format validation" in d.name for e in d.errors]
    return (summary.status == "failed" and bool(format_errors)
            and all(any(t in msg for t in NETWORK_ERROR_TEXTS) for msg in format_errors)
            and len(errors) <= len(format_errors) + 1)  # + "Has expected resource type", which follows from it


def _without_github_users(descr):
    """The description without the GitHub user names only GitHub's API can check (maintainers need one)."""
    authors = [a.model_copy(update={"github_user": None}) for a in descr.authors]
    return descr.model_copy(update={"authors": authors, "maintainers": []})


STATIC_NOTE = "model not run (--static): bioimageio.core's test_model left out; run validate without --static " \
              "before uploading"


# weight formats whose test runs no code from the package (a graph, not Python)
CODE_FREE_FORMATS = ("onnx", "torchscript")
# library architectures a package may name: installed code the user already runs (micro-sam's own exports name
# micro_sam.bioimageio.predictor_adaptor; anything else, ``os.system`` included, would be called by test_model)
TRUSTED_LIBRARIES = ("micro_sam.", "microsam_fiji.")


def _known_sources() -> dict[str, str]:
    """sha256 of the architecture sources whose code is known: the one this version writes, and the one the
    installed micro-sam's exporter writes (``predictor_adaptor.py``)."""
    import hashlib
    import importlib.util

    from microsam_fiji.zoo import architecture

    known = {hashlib.sha256(Path(architecture.__file__).read_bytes()).hexdigest(): "the one micro-sam-fiji writes"}
    spec = importlib.util.find_spec("micro_sam.bioimageio")
    if spec is not None and spec.submodule_search_locations:
        adaptor = Path(list(spec.submodule_search_locations)[0]) / "predictor_adaptor.py"
        if adaptor.exists():
            known[hashlib.sha256(adaptor.read_bytes()).hexdigest()] = "the installed micro-sam's own"
    return known


def code_to_run(descr) -> dict[str, tuple[bool, str]]:
    """What ``test_model`` would execute for each weight format of ``descr``: (known code, in words).

    Args:
        descr: the package's model description.

    Returns:
        weight format -> (whether the code is known: ours, micro-sam's or none, what runs)."""
    import hashlib

    found: dict[str, tuple[bool, str]] = {}
    for wf in ("pytorch_state_dict", "torchscript", "onnx", "keras_hdf5", "keras_v3",
               "tensorflow_saved_model_bundle", "tensorflow_js"):
        weights = getattr(descr.weights, wf, None)
        if weights is None:
            continue
        if wf in CODE_FREE_FORMATS:
            found[wf] = (True, "a graph, no Python from the package")
        elif wf != "pytorch_state_dict":
            found[wf] = (False, f"{wf} weights, which can hold Python code (e.g. Lambda layers)")
        else:
            arch = weights.architecture
            name = f"{getattr(arch, 'import_from', '') or ''}.{arch.callable}".lstrip(".")
            if getattr(arch, "import_from", None) is not None:
                known = str(arch.import_from).startswith(TRUSTED_LIBRARIES)
                found[wf] = (known, f"{name} from an installed library" + ("" if known else ", not micro-sam's"))
            else:
                data = _file_bytes(arch) or b""
                source = Path(str(arch.source)).name
                label = _known_sources().get(hashlib.sha256(data).hexdigest())
                found[wf] = (label is not None,
                             f"the package's Python '{source}' ({label})" if label else
                             f"the package's own Python '{source}', which is not the architecture micro-sam-fiji or "
                             "micro-sam writes")
    return found


def validate_package(path: str | os.PathLike, weight_format: str | None = None, static: bool = False,
                     run_package_code: bool = False,
                     progress: Callable[[str], None] | None = None) -> ValidationResult:
    """Run every check on the package at ``path``.

    Running the model (bioimageio.core's ``test_model``) executes what a weight format needs: ONNX and
    TorchScript graphs run no Python from the package; ``pytorch_state_dict`` runs its architecture, which is run
    only where it is the one this project (or the installed micro-sam) writes, and Keras / TensorFlow weights
    never, unless ``run_package_code``. What is not run is a failed check that says why.

    Args:
        path: a package zip, its unpacked folder or its rdf.yaml.
        weight_format: restricts ``test_model`` to one weight format.
        static: only the checks that do not run the model (bioimageio.spec's format validation, the micro-sam
            parts, the upload points): seconds instead of minutes for a large model, while editing the metadata.
        run_package_code: the user's consent to run code from the package that is not ours.
        progress: called with a line as each stage starts (the model run takes minutes).

    Returns:
        every check's result; ``passed`` when none failed."""
    say = progress or (lambda line: None)
    # offline: check the files inside the package, do not ping the URLs it cites (set before bioimageio loads
    # its settings)
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    from microsam_fiji.models.package import pydantic_pin_problem

    _refuse_missing(os.fspath(path))
    path = Path(path).expanduser()
    _refuse_non_packages(path)  # what is no package at all: one line, before any progress line
    pin = pydantic_pin_problem()
    if pin is not None:
        say(pin)  # before the minutes of checks it makes fail
    say("micro-sam parts (config.micro_sam, hash-checked weights and attachment)")
    checks = [_micro_sam_check(path)]
    foreign = checks[0].warning
    if pin is not None:
        checks.insert(0, Check(pin, True, warning=True))  # a warning: a fixed bioimageio.spec patch may pass
    if not checks[-1].passed and ("not a valid zip" in checks[-1].errors[0]
                                  or "not a readable Model Zoo package" in checks[-1].errors[0]):
        return ValidationResult(path, checks)  # nothing further can read it: the reason is said
    say("upload points (covers, documentation, people, member names)")
    checks += upload_checks(path)
    if static:
        from bioimageio.spec import load_description

        say("bioimageio.spec format validation (--static: the model is not run)")
        summary = load_description(path, perform_io_checks=False).validation_summary  # no network, no model run
        checks.append(Check(STATIC_NOTE, True, warning=True))
        checks += _detail_checks(summary, False)
        if summary.status == "failed" and all(c.passed for c in checks):
            checks.append(Check("bioimageio.spec format validation", False,
                                ["failed (see bioimageio.spec's summary)"]))
        return ValidationResult(path, checks, foreign=foreign)
    from microsam_fiji.models.package import read_description

    try:
        descr = read_description(path)
    except UserError as err:
        return ValidationResult(path, [*checks, Check("bioimageio.core test_model", False, [str(err)])],
                                foreign=foreign)
    formats, refused = _formats_to_run(descr, weight_format, run_package_code)
    checks += refused
    tested: list[Check] = []
    for wf in formats:
        say(f"bioimageio.core test_model, {wf} weights: runs {code_to_run(descr)[wf][1]} (minutes on a CPU)")
        tested += _test_format(path, wf)
    # each format's run repeats the format validation and the GitHub note: each said once
    seen: set[tuple] = set()
    for check in tested:
        key = (check.name, check.passed, tuple(check.errors), tuple(check.warnings))
        if key not in seen:
            seen.add(key)
            checks.append(check)
    return ValidationResult(path, checks, foreign=foreign)


def _formats_to_run(descr, weight_format: str | None, run_package_code: bool) -> tuple[list[str], list[Check]]:
    """The weight formats ``test_model`` may run, and a failed check for each whose code is not known."""
    code = code_to_run(descr)
    if weight_format is not None:
        if weight_format not in code:
            return [], [Check(f"bioimageio.core test_model: the package has no {weight_format} weights", False,
                              [f"its weight formats: {', '.join(code)}"])]
        code = {weight_format: code[weight_format]}
    run, refused = [], []
    for wf, (known, what) in code.items():
        if known or run_package_code:
            run.append(wf)
        else:
            refused.append(Check(f"{wf} weights not tested: that would run {what}", False,
                                 ["code from a package runs only with your consent: check the file, then run "
                                  "'microsam-fiji validate --run-package-code' (the other formats were tested)"]))
    return run, refused


def _test_format(path: Path, weight_format: str) -> list[Check]:
    """bioimageio.core's ``test_model`` for one weight format, as checks (GitHub users left out without
    network: bioimageio.spec asks GitHub's API about them, which fails the format validation offline)."""
    from bioimageio.core import test_model

    from microsam_fiji.core.errors import one_line
    from microsam_fiji.models.package import read_description

    try:
        summary = test_model(path, weight_format=weight_format, devices=["cpu"])  # type: ignore[arg-type]
        checks = []
        stripped = _failed_for_network_only(summary)
        if stripped:
            summary = test_model(_without_github_users(read_description(path)),
                                 weight_format=weight_format,  # type: ignore[arg-type]  # a format name
                                 devices=["cpu"])
            checks.append(Check("GitHub users not verified: no network (the Model Zoo checks them on upload)", True,
                                warning=True))
    except Exception as err:  # noqa: BLE001 - bioimageio.core raises on what it cannot load: one line, not its traceback
        return [Check(f"bioimageio.core test_model ({weight_format})", False, [one_line(err)])]
    checks += _detail_checks(summary, stripped)
    if summary.status == "failed" and all(c.passed for c in checks):
        checks.append(Check(f"bioimageio.core test_model ({weight_format})", False,
                            ["failed (see bioimageio.core's summary)"]))
    return checks


def _detail_checks(summary, stripped: bool) -> list[Check]:
    """bioimageio's summary details as checks; ``stripped``: the GitHub users were taken out (no network)."""
    from bioimageio.spec.summary import WARNING

    from microsam_fiji.models.package import located

    checks = []
    for detail in summary.details:
        errors = [_short(located(e)) for e in detail.errors]
        warnings = [_short(located(w)) for w in detail.warnings
                    if w.severity >= WARNING  # leave out bioimageio's info-level notes
                    and not (stripped and "github_user" in w.msg)]  # we took them out, see validate_package
        checks.append(Check(_short(detail.name, 100), detail.status != "failed", errors, warnings))
    return checks


def _refuse_missing(text: str) -> None:
    """One line for a package that is not here: a Model Zoo id or URL (validate checks local files; the text
    as given, not a Path's ``https:/``) or a path that does not exist."""
    from microsam_fiji.models.zoo_id import zoo_reference

    if Path(text).expanduser().exists():
        return
    reference = zoo_reference(text)
    if reference is not None:
        kind = "URL" if "://" in text else "id"
        raise UserError(f"'{text}' is not a file here but reads as a Model Zoo {kind}: validate checks a local "
                        f"package; download it first ('bioimageio package {reference} model.zip', with network), then "
                        "'microsam-fiji validate model.zip'")
    raise UserError(f"package '{text}' not found: check the path (a zip, its unpacked folder or its rdf.yaml)")


def _refuse_non_packages(path: Path) -> None:
    """One line (a UserError) for what is no package at all, before bioimageio.spec reads it: a zip or folder
    without rdf.yaml, an empty zip, a ROI set, a text file (see ``models.package``), a damaged zip member."""
    import zipfile

    from microsam_fiji.models.package import _description_source

    if path.is_file() and path.suffix.lower() == ".zip" and not zipfile.is_zipfile(path):
        return  # a broken zip: the checks below report it as a FAILED package
    source = _description_source(path)
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            try:
                bad = z.testzip()  # reads every member: a damaged one is named, not reported missing later
            except (zipfile.BadZipFile, OSError, EOFError) as err:
                bad = str(err)
        if bad is not None:
            raise UserError(f"'{path.name}' is damaged: member '{bad}' fails its CRC check: download or export "
                            "the package again")


# pre- and postprocessing that deepImageJ / JDLL run themselves (anything else is refused there)
JDLL_PROCESSING = ("binarize", "clip", "ensure_dtype", "fixed_zero_mean_unit_variance", "scale_linear",
                   "scale_mean_variance", "scale_range", "sigmoid", "zero_mean_unit_variance")


def _file_bytes(file_descr) -> bytes | None:
    try:
        return file_descr.get_reader().read()
    except Exception:  # noqa: BLE001 - a missing file is bioimageio.spec's error to report, not this check's
        return None


def _cover_check(descr) -> Check:
    import io

    from PIL import Image

    from microsam_fiji.zoo.card import COVER_MAX_BYTES

    if not descr.covers:
        return Check("covers: none (the Model Zoo shows a cover image for each model)", True, warning=True)
    problems, sizes = [], []
    for cover in descr.covers:
        name = Path(str(cover.source)).name
        data = _file_bytes(cover)
        if data is None:
            problems.append(f"{name}: cannot be read")
            continue
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
        sizes.append(f"{name} {w}x{h} px, {len(data) // 1024} KB")
        if len(data) > COVER_MAX_BYTES:
            problems.append(f"{name}: {len(data) // 1024} KB, over the Model Zoo's {COVER_MAX_BYTES // 1024} KB")
        if w * 1 != h * 2 and w != h:
            problems.append(f"{name}: {w}x{h} px, not 2:1 or 1:1")
    if problems:
        return Check("covers: " + "; ".join(problems), True, warning=True)
    return Check(f"covers at most 500 KB, 2:1 or 1:1 ({'; '.join(sizes)})", True)


def _documentation_check(descr) -> Check:
    import re

    from microsam_fiji.zoo.documentation import DOC_SECTIONS

    doc = descr.documentation
    text = (_file_bytes(doc) or b"").decode("utf-8", "replace") if doc is not None else ""
    headings = {m.strip().lower() for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, flags=re.M)}
    missing = [s for s in DOC_SECTIONS if s.lower() not in headings]
    if missing:
        return Check(f"documentation lacks the section(s) {', '.join(missing)} (the Model Zoo asks for "
                     f"{', '.join(DOC_SECTIONS)})", True, warning=True)
    return Check(f"documentation has {', '.join(DOC_SECTIONS)}", True)


def _people_check(descr) -> Check:
    import getpass

    authors = [a.name for a in descr.authors]
    has_github = any(getattr(p, "github_user", None) for p in [*descr.authors, *descr.maintainers])
    problems = []
    if authors == [getpass.getuser()] or authors in (["root"], ["user"]):
        problems.append(f"the only author is '{authors[0]}' (a user name): pass --author 'NAME; github_user=USER'")
    if not descr.maintainers:
        problems.append("no maintainers: pass --maintainer 'NAME; github_user=USER'")
    elif not has_github:
        problems.append("no github_user among authors / maintainers")
    if descr.uploader is None:
        problems.append("no uploader: pass --uploader EMAIL")
    if problems:
        return Check("people: " + "; ".join(problems), True, warning=True)
    return Check(f"authors ({', '.join(authors)}), maintainers with github_user, uploader", True)


def _processing_check(descr) -> Check:
    steps = [str(p.id) for t in [*descr.inputs, *descr.outputs]
             for p in [*getattr(t, "preprocessing", []), *getattr(t, "postprocessing", [])]]
    other = sorted(set(steps) - set(JDLL_PROCESSING))
    if other:
        return Check(f"processing steps deepImageJ/JDLL do not run: {', '.join(other)}", True, warning=True)
    return Check(f"only built-in pre/postprocessing ({', '.join(dict.fromkeys(steps)) or 'none'})", True)


def _licence_note_check(descr) -> Check:
    from microsam_fiji.zoo.test_data import TEST_IMAGE_LICENSE_FILE

    config = (descr.config.model_extra or {}).get("micro_sam") or {}
    names = {Path(str(a.source)).name for a in descr.attachments}
    doc = descr.documentation
    text = (_file_bytes(doc) or b"").decode("utf-8", "replace") if doc is not None else ""
    built_in = "StarDist" in text or "stardist" in text
    if built_in and TEST_IMAGE_LICENSE_FILE not in names:
        return Check(f"the built-in test image (StarDist crop, BSD-3) is used but its licence note "
                     f"'{TEST_IMAGE_LICENSE_FILE}' is not attached: re-export", True, warning=True)
    if built_in:
        return Check(f"test image licence note attached ({TEST_IMAGE_LICENSE_FILE})", True)
    return Check("test image: the exporter's own" + (" (micro-sam-fiji export)" if config else ""), True)


def _input_declaration_check(descr) -> Check:
    problems = []
    for tensor in descr.inputs:
        channels = next((len(a.channel_names) for a in tensor.axes if getattr(a, "type", "") == "channel"), None)
        text = (tensor.description or "").lower()
        says_both = "grayscale or rgb" in text or "gray or rgb" in text
        if channels is not None and says_both:
            problems.append(f"input '{tensor.id}' declares {channels} channel(s) but its description says "
                            "grayscale or RGB")
    if problems:
        return Check("; ".join(problems), True, warning=True)
    return Check("input declarations match their descriptions", True)


def _standalone_check(descr) -> Check:
    from microsam_fiji.zoo.weights import STANDALONE_FORMATS, standalone_warnings

    formats = [wf for wf in STANDALONE_FORMATS if getattr(descr.weights, wf, None) is not None]
    found = standalone_warnings(["pytorch_state_dict", *formats] if descr.weights.pytorch_state_dict else formats)
    if found:
        return Check(found[0], True, warning=True)
    return Check(f"standalone weights ({', '.join(formats)}: run without micro-sam)", True)


def _member_names_check(path: Path) -> Check:
    """A zip member named ``../x`` or ``/x`` points outside the package: readers here never write it, but an
    unzip tool may (zip slip), and the Model Zoo expects every file inside. Failed, not a warning."""
    import zipfile
    from pathlib import PurePosixPath, PureWindowsPath

    if not (path.is_file() and zipfile.is_zipfile(path)):
        return Check("member names (an unpacked folder: none to check)", True)
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    outside = [n for n in names
               if PurePosixPath(n).is_absolute() or PureWindowsPath(n).is_absolute() or PureWindowsPath(n).drive
               or ".." in PurePosixPath(n.replace("\\", "/")).parts]
    if outside:
        shown = ", ".join(repr(n) for n in outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        return Check(f"member names outside the package: {shown}", False,
                     ["a zip tool unpacking it writes these outside its folder (zip slip): rebuild the package with "
                      "'microsam-fiji export' or a zip of the package folder"])
    return Check(f"member names inside the package ({len(names)} files)", True)


def upload_checks(path: Path) -> list[Check]:
    """What the Model Zoo asks of an upload beyond ``bioimageio test``, each point ok or a warning."""
    from microsam_fiji.models.package import read_description

    try:
        descr = read_description(path)
    except UserError:
        return []  # the micro-sam check has reported why
    checks = [_cover_check(descr), _documentation_check(descr)]
    checks.append(Check("no id (the Model Zoo assigns one on upload)", True) if descr.id is None else
                  Check(f"id '{descr.id}' is set: leave it out, the Model Zoo assigns one on upload", True,
                        warning=True))
    checks += [_people_check(descr)]
    missing = [f for f in ("version", "git_repo") if getattr(descr, f, None) is None]
    training = (descr.config.bioimageio.training.model_extra or {}) if descr.config.bioimageio else {}
    if descr.training_data is None and not training.get("training_data_source"):
        missing.append("training_data")
    flags = ", --".join(m.replace("_", "-") for m in missing)
    checks.append(Check(f"not given: {', '.join(missing)} (export options --{flags})", True, warning=True)
                  if missing else Check("version, git_repo and training_data given", True))
    checks += [_processing_check(descr), _licence_note_check(descr), _input_declaration_check(descr),
               _standalone_check(descr), _member_names_check(path)]
    return [Check(f"upload: {c.name}", c.passed, c.errors, c.warnings, c.warning) for c in checks]
