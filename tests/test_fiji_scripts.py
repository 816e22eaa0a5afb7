"""The macros in fiji-scripts/, run by ImageJ's macro interpreter against the bridge session (and the CLI)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.bridge import macro, open_image, rois_as_labels, showing_dialogs, write_tiff
from helpers.imagej import require_imagej

SCRIPTS = Path(__file__).resolve().parents[1] / "fiji-scripts"

pytestmark = pytest.mark.timeout(300)


def run_script(name: str, argument: str = "", before: str = "") -> str | None:
    return macro(before + f'return runMacro("{SCRIPTS / name}", "{argument}");')


def test_every_script_tells_users_how_to_install_and_run_it():
    for path in SCRIPTS.glob("*.ijm"):
        header = path.read_text().split("\n\n")[0]
        assert "Install" in header and "microsam-fiji" in header, path.name


def test_batch_folder_writes_rois_and_labels_per_image(tmp_path, nuclei, reference, rm, capfd):
    from microsam_fiji.core.tiff_io import read_image
    from microsam_fiji.rois.decode import rois_to_labels

    folder, out = tmp_path / "in put", tmp_path / "out put"
    folder.mkdir()
    write_tiff(folder / "a.tif", nuclei)
    write_tiff(folder / "b.tif", nuclei)
    (folder / "notes.txt").write_text("not an image")
    # the user's ROI on an open image (with no image open, ImageJ without its main window ends the process: IJ.getImage
    # calls System.exit when there is no ImageJ instance)
    macro(open_image(str(folder / "a.tif")) + 'makeRectangle(1, 1, 9, 9); roiManager("add");')
    run_script("batch_folder.ijm", f"input=[{folder}] output=[{out}] min_size=25")
    assert sorted(p.name for p in out.iterdir()) == ["a_RoiSet.zip", "a_labels.tif", "b_RoiSet.zip", "b_labels.tif"]
    for stem in "ab":
        assert np.array_equal(rois_to_labels(out / f"{stem}_RoiSet.zip", nuclei.shape), reference.labels)
        assert np.array_equal(read_image(out / f"{stem}_labels.tif").data, reference.labels)
    assert rm.getCount() == 1  # the user's ROI is still there, the per-image ROIs went to the files
    log = capfd.readouterr().out
    n = int(reference.labels.max())
    assert f"1/2 a.tif: {n} objects" in log and f"2/2 b.tif: {n} objects" in log


def test_batch_folder_without_images_says_so(bridge, tmp_path, capfd):
    # exit("...") stops the macro; ImageJ shows the message (here, without ImageJ's window: on standard output)
    run_script("batch_folder.ijm", f"input=[{tmp_path}] output=[{tmp_path / 'o'}]")
    assert "micro-sam APG batch: no images (.tif, .tiff, .png, .jpg, .jpeg, .bmp) in" in capfd.readouterr().out
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


def temp_folders() -> set[str]:
    import tempfile

    return {p.name for p in Path(tempfile.gettempdir()).glob("microsam-fiji-*")}


@pytest.mark.timeout(300)
def test_segment_with_cli_on_an_image_without_objects_opens_no_roi_set(tmp_path, rm, capfd):
    """Issue 13.5: 0 objects used to open the ROI Manager's modal "ZIP archive does not contain .roi files"."""
    cli = Path(sys.executable).parent / "microsam-fiji"
    flat = write_tiff(tmp_path / "flat.tif", np.full((32, 32), 7, np.uint16))
    macro('makeRectangle(1, 1, 9, 9); roiManager("add");')
    before = temp_folders()
    run_script("segment_with_cli.ijm", f"cli=[{cli}]", before=open_image(flat))
    assert "micro-sam APG: 0 objects in flat.tif" in capfd.readouterr().out
    assert rm.getCount() == 1 and showing_dialogs() == []
    assert temp_folders() == before  # its own folder, removed


def test_batch_folder_skips_files_that_are_not_images(tmp_path, rm, capfd):
    """Issue 13.5: a non-image with an image's name used to stop the batch on a modal "no image is open"."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "broken.tif").write_text("not an image")
    write_tiff(folder / "flat.tif", np.full((32, 32), 7, np.uint16))
    run_script("batch_folder.ijm", f"input=[{folder}] output=[{out}]")
    log = capfd.readouterr().out
    assert "1/2 broken.tif: skipped, not an image ImageJ can open" in log
    assert "2/2 flat.tif: 0 objects" in log and "skipped (not images): broken.tif" in log
    assert sorted(p.name for p in out.iterdir()) == ["flat_RoiSet.zip", "flat_labels.tif"]
    assert showing_dialogs() == []


# Unattended runs: `microsam-fiji fiji --macro FILE [--batch]` in a subprocess, ImageJ's window shown or hidden
# (with the window, ImageJ answers errors and exit("...") with dialogs). The subprocess timeout is the watchdog:
# no run may wait on a dialog.

CLI = Path(sys.executable).parent / "microsam-fiji"


def run_unattended(tmp_path, code: str, batch: bool, timeout: int = 240) -> subprocess.CompletedProcess:
    require_imagej(display=True)  # fails under CI=true, names xvfb-run
    driver = tmp_path / "driver.ijm"
    driver.write_text(code)
    cmd = [str(CLI), "fiji", "--macro", str(driver)] + (["--batch"] if batch else [])
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"blocked (a dialog waiting for a person?): {err.stdout!r} {err.stderr!r}")


def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "broken.tif").write_text("not an image")
    (folder / "notes.txt").write_text("not an image either")
    write_tiff(folder / "flat.tif", np.full((32, 32), 7, np.uint16))
    return folder


def test_fiji_macro_exit_status(tmp_path):
    """Issue 13.6: a macro runs and the process exits with its status; its Log lines on standard output."""
    done = run_unattended(tmp_path, 'print("hello"); newImage("x", "8-bit ramp", 16, 16, 1); return "" + nImages;',
                          batch=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["hello", "1"]
    done = run_unattended(tmp_path, 'print("before"); exit("broken input: do this");', batch=False, timeout=120)
    assert done.returncode == 2 and "before" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "microsam-fiji: error: Macro: broken input: do this"
    done = subprocess.run([str(CLI), "fiji", "--macro", str(tmp_path / "missing.ijm")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "macro file" in done.stderr and "not found" in done.stderr


@pytest.mark.parametrize("batch", [False, True], ids=["window", "batch"])
def test_scripts_unattended_finish_without_dialogs(tmp_path, batch):
    """0 objects, a non-image in the folder, the folder through the command line program: no dialog at all."""
    folder, out = mixed_folder(tmp_path), tmp_path / "out"
    code = f'''
        runMacro("{SCRIPTS / 'batch_folder.ijm'}", "input=[{folder}] output=[{out}]");
        open("{folder / 'flat.tif'}");
    '''
    if not batch:  # the command line program loads the model in its own process: once is enough
        code += f'''
        runMacro("{SCRIPTS / 'segment_with_cli.ijm'}", "cli=[{CLI}]");
        runMacro("{SCRIPTS / 'batch_folder.ijm'}", "input=[{folder}] output=[{tmp_path / 'cli'}] cli=[{CLI}]");
        '''
    done = run_unattended(tmp_path, code, batch)
    assert done.returncode == 0 and "closed a dialog" not in done.stderr, done.stderr
    log = done.stdout
    assert "1/2 broken.tif: skipped, not an image ImageJ can open" in log and "2/2 flat.tif: 0 objects" in log
    if not batch:
        assert "micro-sam APG: 0 objects in flat.tif" in log  # segment_with_cli.ijm's report
        assert "broken.tif: error: " in log and "flat.tif: 0 objects (done)" in log and "1 failed" in log
        assert (tmp_path / "cli" / "summary.csv").exists()


@pytest.mark.parametrize("batch", [False, True], ids=["window", "batch"])
def test_scripts_unattended_report_bad_input_in_one_line(tmp_path, batch):
    """An unwritable output folder, a bad option, no image: each script stops with one line; nothing waits."""
    folder = mixed_folder(tmp_path)
    unwritable = "/proc/microsam-fiji-test"
    code = f'''
        print("case 1: " + runMacro("{SCRIPTS / 'batch_folder.ijm'}", "input=[{folder}] output=[{unwritable}]"));
        print("case 2: " + runMacro("{SCRIPTS / 'batch_folder.ijm'}", "input=[{folder}] output=[{tmp_path}/o] bogus"));
        close("*");
        print("case 3: " + runMacro("{SCRIPTS / 'segment_with_cli.ijm'}", "cli=[{CLI}]"));
        open("{folder / 'flat.tif'}");
        print("case 4: " + runMacro("{SCRIPTS / 'segment_with_cli.ijm'}", "cli=[{CLI}] bogus"));
    '''
    done = run_unattended(tmp_path, code, batch)
    assert done.returncode == 2
    closed = [line.split(": ", 1)[1] for line in done.stderr.splitlines() if "closed a dialog" in line]
    assert len(closed) == 4, done.stderr
    assert f"cannot write to the output folder {unwritable}/" in closed[0] and "choose a writable folder" in closed[0]
    assert "unknown option 'bogus'" in closed[1]
    assert "micro-sam APG: no image is open: open the image to segment first" in closed[2]
    assert "micro-sam APG: unknown option 'bogus'" in closed[3]
    # exit("...") ends a script as aborted; an error inside run("micro-sam APG") ends it where ImageJ stops it
    assert all(f"case {i}: [aborted]" in done.stdout.splitlines() for i in (1, 3, 4)), done.stdout
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
