"""Shared fixtures: the bundled demo model, a random vit_t checkpoint built here, the stardist test data; and
what the ImageJ tests need from the machine (Java, ij.jar, a display): without it they fail under ``CI=true`` with
the fix named, and are skipped elsewhere with the summary naming what was not tested."""
from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path

# bioimageio.spec pings URLs during validation; there is no network here
os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
# the onnx backend's exported graphs: one folder for the session and the processes it starts (CLI, ImageJ's worker,
# Dask workers), kept between runs as a user's ~/.cache is (the graphs are keyed by their weights)
os.environ.setdefault("MICROSAM_FIJI_CACHE", os.path.join(tempfile.gettempdir(), "microsam-fiji-tests"))

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def stardist_image() -> np.ndarray:
    """Real fluorescence nuclei, 512x512 uint16 (stardist 0.9.2's img2d.tif, see tests/data/README.md)."""
    import tifffile

    return tifffile.imread(DATA / "img2d.tif")


@pytest.fixture(scope="session")
def stardist_mask() -> np.ndarray:
    """Ground-truth instance labels for :func:`stardist_image` (125 nuclei; ids up to 183)."""
    import tifffile

    return tifffile.imread(DATA / "mask2d.tif")


@pytest.fixture(scope="session")
def small_image(stardist_image) -> np.ndarray:
    """A 256x256 crop with ~40 nuclei: small enough for many model runs on CPU."""
    return stardist_image[:256, :256].copy()


@pytest.fixture(scope="session")
def demo_model():
    """The demo model shipped in the package, loaded once for the whole session (CPU)."""
    from microsam_fiji.models.load import load_model

    return load_model("demo", device="cpu")


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    from helpers.models import build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random_vit_t.pt")


# --- Model Zoo packages ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def demo_export(tmp_path_factory) -> tuple[Path, str]:
    """The demo checkpoint exported by the CLI with two APG defaults changed (the slow step, done once)."""
    import contextlib
    import io

    from microsam_fiji.cli import main
    from microsam_fiji.models.demo import DEMO_CHECKPOINT

    out = tmp_path_factory.mktemp("package") / "demo-apg.zip"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["export", "--checkpoint", str(DEMO_CHECKPOINT), "--name", "micro-sam demo nuclei APG",
                       "--out", str(out), "--apg-param", "center=0.45", "--apg-param", "min_size=20",
                       "--author", "Test Author", "--tag", "nuclei"])
    assert status == 0, printed.getvalue()
    return out, printed.getvalue()


@pytest.fixture(scope="session")
def package_zip(demo_export) -> Path:
    return demo_export[0]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh ImageJ folder with the plugin installed by ``microsam-fiji install-fiji`` (one per test module)."""
    from helpers.imagej import fresh_imagej_folder, run_cli

    require_imagej(display=True)
    folder = fresh_imagej_folder(tmp_path_factory.mktemp("fiji"))
    run_cli("install-fiji", folder)
    return folder


# --- ImageJ inside this process (the in-process command) -------------------------------------------------

@pytest.fixture(scope="module")
def bridge():
    """ImageJ in this process with the micro-sam commands (the in-process session), a display required."""
    from helpers.bridge import imagej_with_display, start_session

    imagej_with_display()
    return start_session()


@pytest.fixture(scope="module")
def model(bridge):
    return bridge.models.model()  # the session's default: the demo model, loaded by the session itself


@pytest.fixture(scope="module")
def nuclei(stardist_image):
    from helpers.bridge import nuclei_crop

    return nuclei_crop(stardist_image)


@pytest.fixture(scope="module")
def image_a(nuclei, tmp_path_factory):
    from helpers.bridge import write_tiff

    return write_tiff(tmp_path_factory.mktemp("macro") / "nuclei a.tif", nuclei)


@pytest.fixture(scope="module")
def reference(nuclei, model):
    from microsam_fiji.engines.segment import segment_with_scores

    return segment_with_scores(nuclei, model)


@pytest.fixture
def rm(bridge):
    from helpers.bridge import clean_roi_manager

    return clean_roi_manager()



# --- ImageJ tests and the machine ------------------------------------------------------------------------------

from helpers.imagej import IN_CI, imagej_missing, require_imagej  # noqa: E402 (after the environment set above)

# fixtures that start ImageJ in this process: the bridge session needs a display (menus, macros, ROI Manager),
# the ImagePlus / ROI decoding tests run headless too
IMAGEJ_FIXTURES = {"bridge": True, "ij": False}
# skip reasons that mean "this machine lacks something", never acceptable in CI
ENVIRONMENT_SKIP = re.compile(r"\bdisplay\b|xvfb|\bjava\b|ij\.jar", re.IGNORECASE)

def pytest_report_header(config):
    found = imagej_missing(display=True)
    return (f"ImageJ tests: {'all can run' if found is None else 'missing ' + found}"
            f"{' (CI=true: a missing requirement fails)' if IN_CI else ''}")


# --- tiers: `pytest -m "not imagej and not slow"` is the pure-Python tier (minutes) -----------------------------

# fixtures that start ImageJ (in process or as a user does) and fixtures that load or export a model
IMAGEJ_USES = re.compile(r"\b(run_imagej|run_watched|require_imagej|imagej_with_display|start_session|macro)\(")
MODEL_FIXTURES = {"demo_model", "random_checkpoint", "package_zip", "demo_export", "model", "reference",
                  "micro_sam_export", "micro_sam_model", "fresh_demo", "exported", "package_model",
                  "pickled_checkpoint", "embeddings", "dense_state"}
MODEL_USES = re.compile(r"\b(load_model|segment|segment_with_scores|segment_many|segment_from_prompts|"
                        r"export_package|finetune|build_random_checkpoint|subprocess\.run|validate_package)\(|"
                        r"main\(\[\"(segment|export|prompt|macro|validate|train|convert-checkpoint)\"")


def _source(obj) -> str:
    import inspect

    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def _what_runs(item) -> str:
    """The source of a test, of the fixtures it uses (however indirectly) and of its own module's functions it
    calls: a test that starts ImageJ through a local helper or a fixture is marked as one that calls it directly."""
    import inspect

    function = getattr(item, "function", None)
    parts = [_source(function)] if function is not None else []
    info = getattr(item, "_fixtureinfo", None)
    for defs in (info.name2fixturedefs.values() if info is not None else ()):
        parts.extend(_source(d.func) for d in defs)
    module = getattr(item, "module", None)
    text = "\n".join(parts)
    for name, obj in (vars(module).items() if module is not None else ()):
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and re.search(rf"\b{name}\(", text):
            parts.append(_source(obj))
    return "\n".join(parts)


def pytest_collection_modifyitems(config, items):
    """Mark each test ``imagej`` (it starts ImageJ) and ``slow`` (it loads, trains or exports a model, or starts the
    program), from what it runs (:func:`_what_runs`), so that the markers cannot go stale."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        source = _what_runs(item)
        if names & (set(IMAGEJ_FIXTURES) | {"installed", "harness"}) or IMAGEJ_USES.search(source):
            item.add_marker(pytest.mark.imagej)
        if names & MODEL_FIXTURES or MODEL_USES.search(source) or item.get_closest_marker("imagej"):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item):
    needs = [display for name, display in IMAGEJ_FIXTURES.items() if name in getattr(item, "fixturenames", ())]
    if needs:
        require_imagej(display=any(needs))


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI, a test skipped for a missing display / Java / ImageJ (however it skipped) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report).removeprefix("Skipped: ")
        if ENVIRONMENT_SKIP.search(reason):
            report.outcome = "failed"
            report.longrepr = f"CI=true, and this test was skipped: {reason}"


def pytest_terminal_summary(terminalreporter):
    """Name the tests that did not run, grouped by what they need, so a green run cannot hide them."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    by_reason: dict[str, list[str]] = defaultdict(list)
    for report in skipped:
        by_reason[_skip_reason(report).removeprefix("Skipped: ")].append(report.nodeid)
    terminalreporter.section("not tested here")
    for reason, nodeids in by_reason.items():
        modules = sorted({n.split("::")[0] for n in nodeids})
        terminalreporter.write_line(f"{len(nodeids)} test(s) in {', '.join(modules)}: {reason}")
        if len(nodeids) <= 3:
            for nodeid in nodeids:
                terminalreporter.write_line(f"    {nodeid}")


# --- volumes (issue 28) ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def stardist_volume() -> np.ndarray:
    """Real fluorescence nuclei in 3D, 31x61x57 uint16 ZYX (stardist 0.9.2's img3d.tif, see tests/data/README.md)."""
    import tifffile

    return tifffile.imread(DATA / "img3d.tif")
