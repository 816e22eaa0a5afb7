"""Shared fixtures: the bundled demo model, a random vit_t checkpoint built here, the stardist test data; and
what the ImageJ tests need from the machine (Java, ij.jar, a display): without it they fail under ``CI=true`` with
the fix named, and are skipped elsewhere with the summary naming what was not tested."""
from __future__ import annotations

import os
import re
import tempfile
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# bioimageio.spec pings URLs during validation; there is no network here
os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
# the onnx backend's exported graphs: one folder for the session and the processes it starts (CLI, ImageJ's worker,
# Dask workers), kept between runs as a user's ~/.cache is (the graphs are keyed by their weights)
os.environ.setdefault("MICROSAM_FIJI_CACHE", os.path.join(tempfile.gettempdir(), "microsam-fiji-tests"))
# two pytest-xdist workers (CI's `-n 2`): one compute thread each (torch, ONNX Runtime, and every process a test
# starts). A model pass is then as fast per core as with two threads (measured: 23 s for one plane on one thread,
# 12 s on two), and each worker's single-threaded stretches (process starts, imports, graph exports, ImageJ) use
# the core the other worker leaves; two workers of two threads each would fight over the cores instead
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

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
def bridge(demo_model):
    """ImageJ in this process with the micro-sam commands (the in-process session), a display required; its
    default model is the test session's demo model (the session is one per process: the first start sets it), so
    that a macro and a reference computed here share the planes already encoded."""
    from helpers.bridge import imagej_with_display, start_session

    imagej_with_display()
    return start_session(default_model=demo_model)


@pytest.fixture(scope="module")
def model(bridge):
    return bridge.models.model()  # the session's default: the demo model


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
    program), from what it runs (:func:`_what_runs`), so that the markers cannot go stale; under pytest-xdist,
    check the groups (:func:`_xdist_groups`) and put the longest first."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        source = _what_runs(item)
        if names & (set(IMAGEJ_FIXTURES) | {"installed", "harness"}) or IMAGEJ_USES.search(source):
            item.add_marker(pytest.mark.imagej)
        if names & MODEL_FIXTURES or MODEL_USES.search(source) or item.get_closest_marker("imagej"):
            item.add_marker(pytest.mark.slow)
    if not hasattr(config, "workerinput"):
        return  # not a pytest-xdist worker: the usual order
    groups = _xdist_groups(items)
    stale = {m: g for m, g in groups.items() if g != m and GROUPS.get(m) != g}  # a subset (-k) may use none
    if stale:
        raise pytest.UsageError(f"tests/conftest.py GROUPS is stale: set {stale} (modules that use "
                                f"{', '.join(SHARED_SESSION)} run on one worker)")
    # pytest-xdist (`--no-loadscope-reorder`) hands out the groups in this order: the longest first,
    # so that neither worker is left with a long module at the end (the others in their usual order)
    first = {group: rank for rank, group in enumerate(LONGEST)}
    items.sort(key=lambda it: first.get(_group(it.nodeid), len(first)))


# session fixtures that export or train a model: the modules that use one run on one worker, which makes it once
SHARED_SESSION = {"demo_export": "demo-export"}
# each module's pytest-xdist group where it is not the module itself (checked against the fixtures at collection)
GROUPS = {"test_packaging": "demo-export", "test_untrusted_files": "demo-export", "test_zoo_consumers": "demo-export"}
# the groups that took longest on a worker of a two-worker run of the whole suite on this 2-core machine (one
# compute thread each), longest first (from the run at 2f871a3, less what install-fiji and the torchscript test_model
# no longer cost)
LONGEST = ("test_finetune", "demo-export", "test_volumes", "test_backends", "test_fiji_plugin", "test_claims",
           "test_packaging_upload", "test_selection", "test_export", "test_parity", "test_transports", "test_prompts",
           "test_zoo", "test_fast_apg", "test_segment", "test_fiji_scripts", "test_batch_dask", "test_batch",
           "test_bridge_api", "test_fiji_prompt", "test_fiji_dialog", "test_install_fiji", "test_images", "test_cli",
           "test_robustness")


def _module(nodeid: str) -> str:
    return nodeid.split("::")[0].rsplit("/", 1)[-1].removesuffix(".py")


def _group(nodeid: str) -> str:
    """The pytest-xdist group a test runs in: :data:`GROUPS`' entry for its module, else the module itself."""
    module = _module(nodeid)
    return GROUPS.get(module, module)


def _xdist_groups(items) -> dict[str, str]:
    """Each module's pytest-xdist group: its own name, or the group of a shared slow session fixture
    (:data:`SHARED_SESSION`) that one of its tests uses (a module is never split: its own fixtures run once)."""
    groups: dict[str, str] = {}
    for item in items:
        shared = sorted(SHARED_SESSION[n] for n in set(getattr(item, "fixturenames", ())) & set(SHARED_SESSION))
        module = _module(item.nodeid)
        if shared:
            groups[module] = shared[0]
        groups.setdefault(module, module)
    return groups


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduling by scope with :data:`GROUPS` as the scopes (its own ``loadgroup`` reads a node id
    suffix that pytest 9.2 no longer shows): each group runs whole on one worker."""
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    return ByGroup(config, log)


# --- two workers within the machine's memory ------------------------------------------------------------------

# the tests whose process tree (pytest's process, ImageJ, the worker, the CLI) peaked above 7 GB in a serial run of
# the whole suite on this 24 GB machine, with that peak in GB (the others stay below 7 GB, ~4 GB of it the session's
# own models and Java)
MEMORY_HEAVY = {
    # the trainings +1.6 GB since training keeps torch's large blocks (core/machine.py::large_blocks_kept: a
    # 2-iteration finetune peaked at 9.4 GB instead of 7.8 alone)
    "tests/test_finetune.py::test_train_through_the_plugin": 12.6,  # training in ImageJ's worker
    "tests/test_claims.py::test_mask_threshold_auto": 9.6,
    "tests/test_finetune.py::test_progress_tells": 11.0,  # the module's second training run
    "tests/test_finetune.py::test_esc_keeps": 10.8,  # its first
    "tests/test_fiji_plugin.py::test_esc_during_encoding": 8.4,  # with a random vit_b then; the demo model now
    "tests/test_transports.py::test_same_labels_rois_and_show": 8.2,
    "tests/test_selection.py::test_plugin_and_cli_macro": 7.5,
    "tests/test_packaging.py::test_package_passes_bioimageio_test_model": 7.4,
}
# two of them run at once only where their peaks add up to at most this: what a heavy test beside any other test
# may reach anyway (12.6 + 7.5; the same pairs as 18.5 allowed before the trainings' +1.6 GB), and far inside the
# 24 GB (these peaks are sums of resident sizes, which count the libraries that processes share once per process: in
# a whole two-worker run with the budget at 18.5 the machine's memory in use was at most 13.1 GiB)
MEMORY_BUDGET_GB = 20.1


def _peak_gb(nodeid: str) -> float | None:
    return next((gb for prefix, gb in MEMORY_HEAVY.items() if nodeid.startswith(prefix)), None)


@contextmanager
def _ledger(path: Path) -> Iterator[dict[str, float]]:
    """The memory-heavy tests' claims at ``path`` (a JSON map of worker pid to GB), held under an exclusive lock
    while the caller reads or changes them, then written back; a claim whose worker died is dropped."""
    import fcntl
    import json

    with open(path, "a+") as ledger_file:
        fcntl.flock(ledger_file, fcntl.LOCK_EX)
        ledger_file.seek(0)
        ledger = {pid: claim for pid, claim in json.loads(ledger_file.read() or "{}").items()
                  if Path(f"/proc/{pid}").exists()}
        yield ledger
        ledger_file.seek(0)
        ledger_file.truncate()
        ledger_file.write(json.dumps(ledger))


def _claim_memory(path: Path, gb: float) -> None:
    """Wait until the memory-heavy tests running on the other workers leave room for ``gb`` (:data:`MEMORY_BUDGET_GB`),
    then enter this worker's claim in the ledger at ``path``."""
    import time

    while True:
        with _ledger(path) as ledger:
            if not ledger or sum(ledger.values()) + gb <= MEMORY_BUDGET_GB:
                ledger[str(os.getpid())] = gb
                return
        time.sleep(1.0)


def _release_memory(path: Path) -> None:
    with _ledger(path) as ledger:
        ledger.pop(str(os.getpid()), None)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outermost: the wait is not counted in a test's timeout
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist, a memory-heavy test (:data:`MEMORY_HEAVY`) claims its peak from setup to teardown, and
    waits while the other workers' claims leave too little room; elsewhere nothing changes."""
    workerinput = getattr(item.config, "workerinput", None)
    gb = _peak_gb(item.nodeid)
    if workerinput is None or gb is None:
        yield
        return
    path = Path(tempfile.gettempdir()) / f"microsam-fiji-tests-{workerinput['testrunuid']}.memory.json"
    _claim_memory(path, gb)
    try:
        yield
    finally:
        _release_memory(path)


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
