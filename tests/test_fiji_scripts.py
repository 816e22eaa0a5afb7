"""The macros in fiji-scripts/, run by ImageJ's macro interpreter against the bridge session (and the CLI)."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bridge_helpers import (bridge, image_a, macro, model, nuclei, open_image, reference, rm,  # noqa: F401
                            rois_as_labels, showing_dialogs, write_tiff)

SCRIPTS = Path(__file__).resolve().parents[1] / "fiji-scripts"

pytestmark = pytest.mark.timeout(300)


def run_script(name: str, argument: str = "", before: str = "") -> str | None:
    return macro(before + f'return runMacro("{SCRIPTS / name}", "{argument}");')


def test_every_script_tells_users_how_to_install_and_run_it():
    for path in SCRIPTS.glob("*.ijm"):
        header = path.read_text().split("\n\n")[0]
        assert "Install" in header and "microsam-fiji" in header, path.name


def test_segment_current_image_with_options(image_a, reference, rm, nuclei):
    run_script("segment_current_image.ijm", "min_size=25 replace", before=open_image(image_a))
    assert rm.getCount() == reference.labels.max()
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), reference.labels)


@pytest.mark.timeout(120)
def test_segment_current_image_dialog_defaults_are_micro_sams(image_a, reference, rm, nuclei):
    """Without an argument the script asks in a dialog; pressing OK keeps micro-sam's defaults."""
    from jpype import JClass

    finished = threading.Event()
    errors = []

    def run():
        try:
            run_script("segment_current_image.ijm", "", before=open_image(image_a))
        except Exception as err:  # reported below, in the test's thread
            errors.append(err)
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    dialog, deadline = None, time.time() + 60
    while dialog is None and time.time() < deadline and not finished.is_set():
        time.sleep(0.2)
        dialog = next((w for w in JClass("java.awt.Window").getWindows()
                       if w.isShowing() and str(getattr(w, "getTitle", lambda: "")()) == "micro-sam APG"), None)
    assert dialog is not None, f"no dialog; errors: {errors}"
    ok = dialog.getButtons()[0]
    dialog.actionPerformed(JClass("java.awt.event.ActionEvent")(ok, 1001, "OK"))
    assert finished.wait(60) and not errors
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), reference.labels)


def test_batch_folder_writes_rois_and_labels_per_image(tmp_path, nuclei, reference, rm, capfd):
    from microsam_fiji.bridge.rois import rois_to_labels
    from microsam_fiji.tiff_io import read_image

    folder, out = tmp_path / "in put", tmp_path / "out put"
    folder.mkdir()
    write_tiff(folder / "a.tif", nuclei)
    write_tiff(folder / "b.tif", nuclei)
    (folder / "notes.txt").write_text("not an image")
    macro('makeRectangle(1, 1, 9, 9); roiManager("add");')
    run_script("batch_folder.ijm", f"input=[{folder}] output=[{out}] min_size=25")
    assert sorted(p.name for p in out.iterdir()) == ["a_RoiSet.zip", "a_labels.tif", "b_RoiSet.zip", "b_labels.tif"]
    for stem in "ab":
        assert np.array_equal(rois_to_labels(out / f"{stem}_RoiSet.zip", nuclei.shape), reference.labels)
        assert np.array_equal(read_image(out / f"{stem}_labels.tif").data, reference.labels)
    assert rm.getCount() == 1  # the user's ROI is still there, the per-image ROIs went to the files
    log = capfd.readouterr().out
    n = int(reference.labels.max())
    assert f"1/2 a.tif: {n} objects" in log and f"2/2 b.tif: {n} objects" in log


def test_batch_folder_without_images_says_so(tmp_path, capfd):
    # exit("...") stops the macro; ImageJ shows the message (here, without ImageJ's window: on standard output)
    run_script("batch_folder.ijm", f"input=[{tmp_path}] output=[{tmp_path / 'o'}]")
    assert "micro-sam APG batch: no images (.tif, .tiff, .png, .jpg) in" in capfd.readouterr().out
    assert showing_dialogs() == []


@pytest.mark.timeout(300)
def test_segment_with_cli_runs_the_command_line_program(image_a, reference, rm, nuclei, capfd):
    """The variant for a Fiji not started from Python: temp TIFF -> microsam-fiji segment -> RoiSet.zip."""
    cli = Path(sys.executable).parent / "microsam-fiji"
    assert cli.exists()
    macro('makeRectangle(1, 1, 9, 9); roiManager("add");')
    run_script("segment_with_cli.ijm", f"cli=[{cli}] min_size=25", before=open_image(image_a))
    assert rm.getCount() == reference.labels.max() + 1, capfd.readouterr().out[-2000:]  # the macro's message
    rois = list(rm.getRoisAsArray())[1:]
    assert np.array_equal(rois_as_labels(rois, nuclei.shape), reference.labels)
