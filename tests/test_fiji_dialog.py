"""The plugin's dialog as a user meets it, in a real ImageJ with its main window (the command started like a menu
click, ``tests/java/DialogHarness.java``): its fields come from the worker's table of options (Python's
``command/options.py``; the Java side holds no labels or defaults), the model is one choice, Help opens this
project's page from the jar, OK records the options as the dialog wrote them (a path with ``]`` in quotes),
Cancel records nothing, and a model is offered again only after a call with it worked."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji.command.options import dialog_fields

from helpers.imagej import IJ_JAR, printed, run_watched, worker_log, xvfb_run

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("harness")
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", str(IJ_JAR), "-d",
                    str(folder), str(Path(__file__).parent / "java" / "DialogHarness.java")], check=True)
    return folder


def run_dialog(folder: Path, harness: Path, image: Path, tmp: Path, *mode: str, env: dict | None = None):
    cmd = [*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp}",
           f"-Duser.home={tmp}", f"-Dplugins.dir={folder}", "-cp", f"{IJ_JAR}{os.pathsep}{harness}", "DialogHarness",
           str(image),
           str(tmp / "dialog.png"), str(tmp / "recorder.txt"), *mode]
    done = run_watched(cmd, 300, env=dict(os.environ, HOME=str(tmp), **(env or {})))  # fresh ImageJ preferences
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{worker_log(tmp)}"
    return done


def shown(done) -> list[tuple[str, str]]:
    return [tuple(line.split("=", 1)) for line in done.stdout.splitlines()  # type: ignore[misc]
            if line.split("=", 1)[0] in ("label", "checkbox", "choice", "field", "help_text", "help_button")]


@pytest.fixture(scope="module")
def stack(stardist_image, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dialog") / "stack.tif"
    tifffile.imwrite(path, np.stack([stardist_image[:96, :96], stardist_image[96:192, :96]]), imagej=True,
                     metadata={"axes": "ZYX"})
    return path


def test_the_dialog_is_the_workers_table_with_one_model_choice_and_its_own_help(installed, harness, stack,
                                                                                  tmp_path):
    from microsam_fiji.core.version import package_version
    from microsam_fiji.installer.install import apg_model_names

    items = shown(run_dialog(installed, harness, stack, tmp_path, "inspect"))
    labels = [v for k, v in items if k == "label"]
    checkboxes = dict(v.split("\tkey=") for k, v in items if k == "checkbox")
    choices = [v.split(",") for k, v in items if k == "choice"]
    fields = [v for k, v in items if k == "field"]
    help_text = next((v for k, v in items if k == "help_text"), "")
    table = dialog_fields("apg")
    # every field of the table that a one-channel z-stack shows, with its label (ImageJ shows a label's underscores
    # as spaces); the channel choice appears only on an image with several channels
    assert not any(lab.startswith("channel") for lab in labels), labels
    for field in (f for f in table if f["shown"] != "channels"):
        text = field["label"].replace("{planes}", "2").replace("{slices}", "2")  # 2 z slices
        where = checkboxes if field["kind"] == "flag" else labels
        assert any(shown_text.replace(" ", "_") == text.replace(" ", "_") for shown_text in where), (text, where)
    # the Recorder's keys of the checkboxes (Preview has none)
    assert {f["key"] for f in table if f["kind"] == "flag"} == set(checkboxes.values()) - {""}
    for key in ("foreground", "center", "boundary", "nms"):  # micro-sam's defaults, sent by the worker
        default = next(f["default"] for f in table if f["key"] == key)
        assert f"{default:.2f}" in fields, (key, fields)
    # one model control: the default, the models by name (downloads said), another file
    models = choices[0]
    assert models[0] == "default (demo)" and models[-1] == "Other file..." and "demo" not in models[1:], models
    assert [m.split(" ")[0] for m in models[1:-1]] == apg_model_names()[1:], models
    assert all(m.endswith("(downloaded on first use)") for m in models[1:-1]), models
    about = next((lab for lab in labels if lab.startswith("micro-sam-fiji ")), "")
    assert package_version() in about
    # Help: this project's page from the jar, its option rows made from the same table
    assert ("help_button", "true") in items and "Could not find a browser" not in help_text
    for text in (f"micro-sam-fiji {package_version()}", "touching objects split", "the ROIs you added too",
                 "RoiSet.zip", "worker.log", "Esc", "'/data/mod]els/m.pt'"):
        assert text in help_text, (text, help_text[:600])
    assert "{" not in help_text  # every placeholder filled


def test_a_default_changed_in_the_table_shows_in_the_dialog_without_a_java_change(installed, harness, stack,
                                                                                    tmp_path):
    """The worker imports a copy of the package whose table gives foreground a default of its own (0.42 instead
    of micro-sam's) and a new label: the same jar shows both."""
    overlay = tmp_path / "overlay"
    shutil.copytree(SRC / "microsam_fiji", overlay / "microsam_fiji", ignore=shutil.ignore_patterns("_built"))
    options = overlay / "microsam_fiji" / "command" / "options.py"
    text = options.read_text(encoding="utf-8")
    assert 'param="foreground_threshold"' in text and '"threshold", "the foreground threshold' in text
    options.write_text(text.replace('param="foreground_threshold"', "default=0.42")
                       .replace('"threshold", "the foreground threshold', '"level (table changed)", "the foreground'),
                       encoding="utf-8")
    items = shown(run_dialog(installed, harness, stack, tmp_path, "inspect", env={"PYTHONPATH": str(overlay)}))
    labels = [v for k, v in items if k == "label"]
    assert any(lab.startswith("foreground level (table changed)") for lab in labels), labels
    assert "0.42" in [v for k, v in items if k == "field"]


def test_cancel_records_nothing(installed, harness, stack, tmp_path):
    values = printed(run_dialog(installed, harness, stack, tmp_path, "cancel").stdout)
    assert "micro-sam APG" not in values["recorded"], values["recorded"]


def test_a_model_path_with_a_bracket_is_recorded_in_quotes_and_offered_after_it_worked(installed, harness,
                                                                                        stack, tmp_path):
    """Earlier, ``model=[/data/mod]els/m.pt]`` was recorded (and failed as '/data/mod' not found); the model is
    offered again only because the call with it worked."""
    from microsam_fiji.models.demo import DEMO_CHECKPOINT

    model = tmp_path / "mod]els" / "m.pt"
    model.parent.mkdir()
    shutil.copy(DEMO_CHECKPOINT, model)
    prefs = tmp_path / ".imagej" / "IJ_Prefs.txt"
    prefs.parent.mkdir()
    prefs.write_text(f".microsam_fiji.recent0={model}\n")  # offered as a model a user had chosen before
    values = printed(run_dialog(installed, harness, stack, tmp_path, "choose", "mod]els").stdout)
    line = next(line for line in values["recorded"].split("\\n") if "micro-sam APG" in line)
    assert f"model='{model}'" in line, line
    assert int(values["roi_manager_count"]) > 0 and values["recent0"] == str(model)


def test_after_a_failed_call_the_status_bar_says_no_more_loading(installed, harness, stack, tmp_path):
    """A model that cannot load (a damaged file chosen in the dialog): the error is shown, and the status bar no
    longer says "loading the model" (with a half-filled progress bar) afterwards."""
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    prefs = tmp_path / ".imagej" / "IJ_Prefs.txt"
    prefs.parent.mkdir()
    prefs.write_text(f".microsam_fiji.recent0={broken}\n")
    values = printed(run_dialog(installed, harness, stack, tmp_path, "fail", "broken.pt").stdout)
    assert values["error_box"].startswith("micro-sam APG"), values
    assert "loading" not in values["status"], values
