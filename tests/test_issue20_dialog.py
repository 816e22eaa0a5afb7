"""Issue 20 item 7 and the dialog side of item 6: what the plugin's dialog shows a new user, in a real ImageJ
with its main window (the command started like a menu click, ``tests/java/DialogHarness.java`` in its
``inspect`` mode: the dialog is read and cancelled, no call runs). The Help opens this project's page from the
plugin's jar (no browser, no network), an About line gives the version, the model field names the default and a
choice offers the models by name, each threshold's label says which way it moves the result, and a stack gets
the ``stack`` checkbox; every field's label still starts with its macro key (what the Recorder records)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import tifffile

from test_fiji_plugin import IJ_JAR, installed, run_watched  # noqa: F401 (installed: fixture)


def inspect_dialog(folder: Path, image: Path, tmp: Path) -> tuple[list[tuple[str, str]], subprocess.CompletedProcess]:
    harness = tmp / "harness"
    harness.mkdir()
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", str(IJ_JAR), "-d",
                    str(harness), str(Path(__file__).parent / "java" / "DialogHarness.java")], check=True)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", "java", f"-Djava.io.tmpdir={tmp}",
           f"-Dplugins.dir={folder}", "-cp", f"{IJ_JAR}{os.pathsep}{harness}", "DialogHarness", str(image),
           str(tmp / "dialog.png"), str(tmp / "recorder.txt"), "inspect"]
    done = run_watched(cmd, 240, env=dict(os.environ, HOME=str(tmp)))  # fresh preferences: no recent models
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    shown = [tuple(line.split("=", 1)) for line in done.stdout.splitlines()
             if line.split("=", 1)[0] in ("label", "checkbox", "choice", "help_text", "help_button")]
    return shown, done  # type: ignore[return-value]


def test_dialog_names_the_default_offers_models_explains_thresholds_and_opens_its_own_help(
        installed, stardist_image, tmp_path):  # noqa: F811
    from microsam_fiji.core.version import package_version
    from microsam_fiji.installer.install import apg_model_names

    config = (installed / "plugins" / "micro-sam-fiji.properties").read_text(encoding="utf-8")
    names = apg_model_names()
    assert names[0] == "demo" and "vit_b_lm" in names and "vit_b" not in names  # vit_b: no decoder, no APG
    assert f"models={','.join(names)}" in config
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.stack([stardist_image[:96, :96], stardist_image[96:192, :96]]), imagej=True,
                     metadata={"axes": "ZYX"})
    shown, done = inspect_dialog(installed, stack, tmp_path)
    labels = [v for k, v in shown if k == "label"]
    checkboxes = dict(v.split("\tkey=") for k, v in shown if k == "checkbox")
    choices = [v.split(",") for k, v in shown if k == "choice"]
    help_text = next((v for k, v in shown if k == "help_text"), "")

    assert "model (empty: default, demo)" in labels, labels
    models = next(c for c in choices if "vit_b_lm" in c)
    assert models[0] == "default (demo)" and models[1:] == names, models  # no recent ones: fresh preferences
    for key, direction in (("foreground", "higher: fewer objects"), ("center", "lower: touching objects split"),
                           ("boundary", "lower: touching objects split"), ("min_size", "smaller objects dropped"),
                           ("nms", "lower: fewer overlapping")):
        # ImageJ shows a label's underscores as spaces (the Recorder keeps the key: min_size)
        label = next((lab for lab in labels if lab.startswith(key.replace("_", " ") + " ")), None)
        assert label is not None and direction in label, (key, labels)
    # the Recorder's key of each checkbox (ImageJ's Macro.trimKey of its label): the macro's flags
    assert {"replace", "stack"} <= set(checkboxes.values()), checkboxes
    stack_label = next(text for text, key in checkboxes.items() if key == "stack")
    assert "all 2 planes" in stack_label and "current one" in stack_label
    about = next((lab for lab in labels if lab.startswith("micro-sam-fiji ")), "")
    assert package_version() in about, labels
    # Help: this project's page from the jar, with the version, the default, the models and the log's place
    assert ("help_button", "true") in shown
    assert f"micro-sam-fiji {package_version()}" in help_text, help_text[:400]
    for text in ("touching objects split", "default, demo", "vit_b_lm", "worker.log", "stack", "selection",
                 "Esc"):
        assert text in help_text, (text, help_text[:400])
    assert "{" not in help_text  # every placeholder filled
    assert "Could not find a browser" not in done.stdout + done.stderr


def test_a_single_plane_image_has_no_stack_checkbox(installed, stardist_image, tmp_path):  # noqa: F811
    image = tmp_path / "plane.tif"
    tifffile.imwrite(image, stardist_image[:96, :96], imagej=True)
    shown, _ = inspect_dialog(installed, image, tmp_path)
    keys = {v.split("\tkey=")[1] for k, v in shown if k == "checkbox"}
    assert "replace" in keys and "stack" not in keys
