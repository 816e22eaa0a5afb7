"""The ImageJ plugin in an ImageJ started as a user starts it: ``java -jar ij.jar`` on a folder prepared by
``microsam-fiji install-fiji`` (never from Python), with ``-batch`` and with the main window under Xvfb.

Results are compared pixel for pixel with :func:`microsam_fiji.engines.segment` run here on the same files."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers.imagej import (
    CLI_MAIN,
    IJ_JAR,
    fresh_imagej_folder,
    printed,
    require_imagej,
    run_cli,
    run_imagej,
    run_watched,
    worker_log,
    xvfb_run,
)

# --- install -------------------------------------------------------------------------------------------------

def test_install_fiji_records_python_and_uninstall_removes_exactly_what_it_added(tmp_path):
    folder = fresh_imagej_folder(tmp_path)
    (folder / "macros").mkdir()
    (folder / "macros" / "mine.ijm").write_text("// the user's own macro")
    (folder / "plugins" / "Other_Plugin.jar").write_bytes(b"not ours")
    run_cli("install-fiji", folder, "--device", "cpu")
    config = (folder / "plugins" / "micro-sam-fiji.properties").read_text()
    assert f"python={sys.executable}" in config and "device=cpu" in config
    assert (folder / "plugins" / "micro_sam_fiji.jar").is_file()
    scripts = sorted(p.name for p in (Path(__file__).parents[1] / "fiji-scripts").glob("*.ijm"))
    assert scripts and all((folder / "macros" / s).is_file() for s in scripts)
    run_cli("install-fiji", folder)  # again: replaces its own files
    run_cli("install-fiji", folder, "--uninstall")
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == ["macros/mine.ijm", "plugins/Other_Plugin.jar"]


def test_install_fiji_refuses_foreign_files_and_non_fiji_folders_with_one_line(tmp_path):
    done = run_cli("install-fiji", tmp_path, check=False)
    assert done.returncode == 2 and "has no plugins/ folder" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    folder = fresh_imagej_folder(tmp_path)
    (folder / "macros").mkdir()
    (folder / "macros" / "batch_folder.ijm").write_text("// the user's own, same name")
    done = run_cli("install-fiji", folder, check=False)
    assert done.returncode == 2 and "was not installed by micro-sam-fiji" in done.stderr
    assert (folder / "macros" / "batch_folder.ijm").read_text() == "// the user's own, same name"
    done = run_cli("install-fiji", folder, "--uninstall", check=False)
    assert done.returncode == 2 and "no micro-sam-fiji installation" in done.stderr


def test_jar_is_built_from_the_sources_it_ships_with(tmp_path):
    """The installed jar carries the digest of fiji-plugin/'s sources; a wheel contains the same build."""
    from microsam_fiji.core.version import package_version
    from microsam_fiji.installer import jarbuild
    from microsam_fiji.installer.jar import SOURCE, ensure_jar, source_digest

    jar = ensure_jar()  # without a JDK this fails with a line naming one: the jar must come from its source
    assert jarbuild.jar_digest(jar) == source_digest()
    again = jarbuild.build_jar(tmp_path / "again.jar", SOURCE, package_version())
    assert again.read_bytes() == jar.read_bytes()  # deterministic: same sources, same bytes
    with zipfile.ZipFile(jar) as z:
        names = set(z.namelist())
        assert "plugins.config" in names and "microsam_fiji/MicroSamAPG.class" in names
        assert b'"micro-sam APG", microsam_fiji.MicroSamAPG' in z.read("plugins.config")
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheel_dir), str(SOURCE.parent)], check=True, capture_output=True, timeout=300)
    with zipfile.ZipFile(next(wheel_dir.glob("*.whl"))) as whl:
        built = whl.read("microsam_fiji/installer/_built/micro_sam_fiji.jar")
        assert any(n.startswith("microsam_fiji/installer/_built/fiji-scripts/") for n in whl.namelist())
    (tmp_path / "wheel.jar").write_bytes(built)
    assert jarbuild.jar_digest(tmp_path / "wheel.jar") == source_digest()


# --- macros in ImageJ -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def images(tmp_path_factory, stardist_image):
    folder = tmp_path_factory.mktemp("images")
    a, b = folder / "a.tif", folder / "b.tif"
    tifffile.imwrite(a, stardist_image[:160, :160], imagej=True)
    tifffile.imwrite(b, stardist_image[352:512, 352:512], imagej=True)
    # two different planes, b's and a's: the worker met b last (and a before it was killed), the session's
    # references know both; each plane costs a pass, and the stack's point is its two planes, not their pixels
    stack = np.stack([stardist_image[352:512, 352:512], stardist_image[:160, :160]])
    tifffile.imwrite(folder / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    return a, b


@pytest.fixture(scope="module")
def batch_run(installed, images, tmp_path_factory):
    """One ImageJ -batch session: two calls on image a (the second with other thresholds), the worker killed,
    one call on image b. Earlier ROIs in the ROI Manager must stay."""
    tmp = tmp_path_factory.mktemp("batch")
    a, b = images
    folder_in, folder_out = tmp / "in", tmp / "out"
    folder_in.mkdir()
    shutil.copy(a, folder_in / "a.tif")
    shutil.copy(b, folder_in / "b.tif")
    (folder_in / "notes.tif").write_text("not an image")
    last = "microsam_fiji.MicroSamAPG.lastResult"
    macro = f"""
open("{a}");
makeRectangle(2, 2, 6, 6); roiManager("add"); roiManager("select", 0); roiManager("rename", "keep-me");
run("Select None");
run("micro-sam APG", "labels=[{tmp}/a_labels.tif] rois=[{tmp}/a_RoiSet.zip]");
print("n1=" + roiManager("count")); print("encoded1=" + call("{last}", "encoded"));
print("seconds1=" + call("{last}", "seconds"));
run("micro-sam APG", "center=0.3 boundary=0.6 labels=[{tmp}/a2_labels.tif]");
print("n2=" + roiManager("count")); print("encoded2=" + call("{last}", "encoded"));
print("seconds2=" + call("{last}", "seconds"));
roiManager("save", "{tmp}/manager.zip");
pid = call("microsam_fiji.MicroSamAPG.workerPid"); print("pid1=" + pid);
exec("kill", "-9", pid); wait(300);
open("{b}");
run("micro-sam APG", "replace labels=[{tmp}/b_labels.tif]");
print("n3=" + roiManager("count")); print("encoded3=" + call("{last}", "encoded"));
print("pid2=" + call("microsam_fiji.MicroSamAPG.workerPid"));
doCommand("micro-sam APG");  // a second caller in another thread, while this macro calls too
run("micro-sam APG", "");
while (parseInt(call("microsam_fiji.MicroSamAPG.completedCalls")) < 5) wait(100);
print("n4=" + roiManager("count"));
open("{a.parent}/stack.tif");
run("micro-sam APG", "stack labels=[{tmp}/stack_labels.tif] rois=[{tmp}/stack_RoiSet.zip]");
runMacro("{installed}/macros/batch_folder.ijm", "input=[{folder_in}] output=[{folder_out}]");
print("batch_done=1");
"""
    done = run_imagej(installed, macro, tmp)
    values = printed(done.stdout)
    assert "n3" in values, f"macro did not finish: {done.stdout}\n{done.stderr}\n{worker_log(tmp)}"
    return tmp, values


def reference(path, demo_model, **params):
    from microsam_fiji import segment
    from microsam_fiji.core.tiff_io import read_image

    return segment(read_image(path).data, demo_model, **params)


def test_macro_labels_equal_segment_pixel_for_pixel(batch_run, images, demo_model):
    tmp, values = batch_run
    a, b = images
    expected_a = reference(a, demo_model)
    assert expected_a.max() > 3
    np.testing.assert_array_equal(tifffile.imread(tmp / "a_labels.tif"), expected_a)
    np.testing.assert_array_equal(tifffile.imread(tmp / "a2_labels.tif"),
                                  reference(a, demo_model, center=0.3, boundary=0.6))
    np.testing.assert_array_equal(tifffile.imread(tmp / "b_labels.tif"), reference(b, demo_model))


def test_macro_rois_equal_segment_and_earlier_rois_stay(batch_run, images, demo_model):
    from microsam_fiji.rois.decode import rois_to_labels
    from microsam_fiji.rois.roiset import read_roiset

    tmp, values = batch_run
    a, _ = images
    expected = reference(a, demo_model)
    n_objects = len(np.unique(expected)) - 1
    manager = read_roiset(tmp / "manager.zip")
    assert manager[0].name == "keep-me"  # the user's ROI, kept (no `replace`)
    assert int(values["n1"]) == 1 + n_objects
    first_call = manager[1:1 + n_objects]
    np.testing.assert_array_equal(rois_to_labels(first_call, expected.shape), expected)
    np.testing.assert_array_equal(rois_to_labels(tmp / "a_RoiSet.zip", expected.shape), expected)
    n_second = len(np.unique(tifffile.imread(tmp / "a2_labels.tif"))) - 1
    assert int(values["n2"]) == 1 + n_objects + n_second
    # the second call's names continue the first's: unique in the ROI Manager, ids those of its labels
    names = [roi.name for roi in manager]
    assert len(set(names)) == len(names) == 1 + n_objects + n_second, names
    second_call = manager[1 + n_objects:]
    assert [roi.name for roi in second_call] == [f"cell-{n_objects + k:04d}" for k in range(1, n_second + 1)]
    assert [int(roi.properties["id"]) for roi in second_call] == list(range(1, n_second + 1))
    # `replace` on image b: only b's objects remain
    n_b = len(np.unique(tifffile.imread(tmp / "b_labels.tif"))) - 1
    assert int(values["n3"]) == n_b
    # two callers at once (doCommand's thread and the macro's): served one after the other, both complete
    assert int(values["n4"]) == 3 * n_b


def test_threshold_rerun_reuses_embeddings_and_killed_worker_is_replaced(batch_run):
    _, values = batch_run
    assert values["encoded1"] == "1"
    assert values["encoded2"] == "0"  # other thresholds, same image: no second encoding
    assert values["encoded3"] == "1"  # the new worker encodes the new image
    assert values["pid1"] and values["pid2"] and values["pid1"] != values["pid2"]
    assert float(values["seconds2"]) < float(values["seconds1"])


def test_bad_option_missing_model_and_missing_setup_give_one_line_each(installed, images, tmp_path):
    a, _ = images
    cases = {
        "bogus=1": "micro-sam APG: unknown option 'bogus'",
        "model=[/nonexistent/model.pt]": "micro-sam APG: ",
    }
    for options, start in cases.items():
        tmp = tmp_path / str(abs(hash(options)))
        tmp.mkdir()
        done = run_imagej(installed, f'open("{a}");\nrun("micro-sam APG", "{options}");\nprint("after=1");\n', tmp)
        lines = [line for line in done.stderr.splitlines() if line.startswith("micro-sam APG")]
        assert len(lines) == 1 and lines[0].startswith(start), (options, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "Exception" not in done.stderr
        assert "after=1" not in done.stdout  # the macro stopped at the error
    assert "not found" in lines[0]
    bare = fresh_imagej_folder(tmp_path / "bare")
    shutil.copy(installed / "plugins" / "micro_sam_fiji.jar", bare / "plugins")
    done = run_imagej(bare, f'open("{a}");\nrun("micro-sam APG", "");\n', tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("micro-sam APG")]
    assert len(lines) == 1 and f"install-fiji {bare}" in lines[0] and "<this" not in lines[0]  # the real folder


def test_python_under_a_non_ascii_path_starts_the_worker(images, tmp_path, demo_model):
    """A Python under /home/José/...: install-fiji writes its path as UTF-8 and the plugin must read it so (read as
    Properties.load(InputStream) does, ISO-8859-1, the path does not exist and the plugin says it cannot be run)."""
    require_imagej(display=True)
    a, _ = images
    home = tmp_path / "José-ü"
    home.mkdir()
    (home / "venv").symlink_to(sys.prefix, target_is_directory=True)  # this environment, reached through home
    python = home / "venv" / "bin" / Path(sys.executable).name
    folder = fresh_imagej_folder(tmp_path)
    done = subprocess.run([str(python), "-c", CLI_MAIN, "install-fiji", str(folder)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    config = (folder / "plugins" / "micro-sam-fiji.properties").read_text(encoding="utf-8")
    assert f"python={python}\n" in config  # recorded as reached, not resolved past the non-ASCII folder
    macro = f'open("{a}");\nrun("micro-sam APG", "");\nprint("n=" + roiManager("count"));\n'
    # a UTF-8 locale, as a user with such a home has: Java on Linux maps file names through it
    done = run_imagej(folder, macro, tmp_path, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert "n" in printed(done.stdout), f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    assert int(printed(done.stdout)["n"]) == len(np.unique(reference(a, demo_model))) - 1


def test_worker_of_another_version_is_refused_naming_the_command(installed, images, tmp_path):
    a, _ = images
    folder = tmp_path / "old"
    shutil.copytree(installed, folder)
    config = folder / "plugins" / "micro-sam-fiji.properties"
    # a worker that reports another version: the plugin must refuse it with the reinstall command
    fake = tmp_path / "python-other-version"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c \"import sys, microsam_fiji.worker.tasks as t; "
                    f"t.package_version = lambda: '0.0.1'; sys.argv[0] = 'worker'; "
                    f"import microsam_fiji.worker.worker as w; w.main(sys.argv[3:])\" \"$@\"\n")
    fake.chmod(0o755)
    config.write_text(config.read_text().replace(f"python={sys.executable}", f"python={fake}"))
    done = run_imagej(folder, f'open("{a}");\nrun("micro-sam APG", "");\n', tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("micro-sam APG")]
    assert len(lines) == 1 and "differ" in lines[0] and "install-fiji" in lines[0], done.stderr


# --- the dialog --------------------------------------------------------------------------------------------

def test_dialog_preview_overlay_and_recorder(installed, images, tmp_path):
    """Menu-click path with ImageJ's main window: Preview shows outlines, a threshold change updates them, OK
    fills the ROI Manager and the Recorder records run("micro-sam APG", ...) with the macro's keys. The
    screenshot (tmp_path/dialog.png) shows the dialog over the image with the preview overlay."""
    a, _ = images
    harness = tmp_path / "harness"
    harness.mkdir()
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", str(IJ_JAR), "-d",
                    str(harness), str(Path(__file__).parent / "java" / "DialogHarness.java")], check=True)
    shot, recorded = tmp_path / "dialog.png", tmp_path / "recorder.txt"
    cmd = [*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp_path}",
           f"-Dplugins.dir={installed}", "-cp", f"{IJ_JAR}{os.pathsep}{harness}", "DialogHarness", str(a),
           str(shot), str(recorded)]
    env = dict(os.environ, HOME=str(tmp_path))  # fresh ImageJ preferences
    done = run_watched(cmd, 400, env=env)
    values = printed(done.stdout)
    assert done.returncode == 0 and "roi_manager_count" in values, f"{done.stdout}\n{done.stderr}"
    assert int(values["preview_objects"]) > 0
    assert int(values["updated_preview_objects"]) != int(values["preview_objects"])
    assert int(values["roi_manager_count"]) > 0
    assert values["overlay_after_ok"] == "0"  # the preview overlay is gone after OK
    text = recorded.read_text()
    line = next(line for line in text.splitlines() if "micro-sam APG" in line)
    assert line.count("center=") == 1, line
    for key in ("mode=apg", "foreground=0.5", "center=0.3", "boundary=0.5", "min_size=25", "nms=0.9"):
        assert key in line, line
    from microsam_fiji.command.options import parse_options

    opts = parse_options(line.split('"micro-sam APG", "', 1)[1].rsplit('"', 1)[0])
    assert opts.params["center"] == "0.3"
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("MICROSAM_FIJI_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / "plugin_dialog_preview.png")


# --- the worker protocol -------------------------------------------------------------------------------------

class WorkerProcess:
    """The worker started as the plugin starts it, spoken to over stdin/stdout JSON lines."""

    def __init__(self, tmp: Path):
        import json

        self.json = json
        self.tmp = tmp
        self.proc = subprocess.Popen([sys.executable, "-m", "microsam_fiji.worker.worker", "--device", "cpu"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        self.lines: list[str] = []

    def send(self, task: str, request_type: str = "EXECUTE", script: str | None = None, **inputs):
        message = {"task": task, "requestType": request_type}
        if request_type == "EXECUTE":
            message.update(script=script or "from microsam_fiji.worker.tasks import handle\nhandle(task, request)",
                           inputs=inputs)
        self.proc.stdin.write(self.json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def until_terminal(self, task: str) -> list[dict]:
        got = []
        while True:
            line = self.proc.stdout.readline()
            assert line, f"worker ended: {self.proc.stderr.read()}"
            self.lines.append(line)
            message = self.json.loads(line)  # every stdout line must be protocol JSON
            if message.get("task") == task:
                got.append(message)
                if message["responseType"] in ("COMPLETION", "FAILURE", "CANCELATION", "CRASH"):
                    return got

    def close(self) -> int:
        self.proc.stdin.close()
        return self.proc.wait(timeout=60)


def raw_request(image: np.ndarray, tmp: Path, options: str = "", name: str = "img") -> dict:
    scratch = tmp / name
    scratch.mkdir(exist_ok=True)
    kind = "float32" if image.dtype == np.float32 else "uint16"
    image.astype("<f4" if kind == "float32" else "<u2").tofile(scratch / "image.raw")
    meta = {"path": str(scratch / "image.raw"), "width": image.shape[1], "height": image.shape[0], "channels": 1,
            "slices": 1, "frames": 1, "kind": kind, "hyperstack": False}
    return {"action": "segment", "options": options, "image": meta, "scratch": str(scratch), "preview": False}


def test_worker_protocol_progress_cancel_and_stray_output(tmp_path, stardist_image, demo_model):
    from microsam_fiji.core.version import package_version as version

    worker = WorkerProcess(tmp_path)
    try:
        worker.send("stray", script="print('stray text from a library')\nimport os\nos.write(1, b'c-level\\n')\n"
                                    "task.outputs['ok'] = 1")
        assert worker.until_terminal("stray")[-1]["outputs"] == {"ok": 1}
        worker.send("old", request={"action": "hello", "plugin_version": "0.0.1", "plugin_folder": "/x/plugins"})
        failure = worker.until_terminal("old")[-1]
        assert failure["responseType"] == "FAILURE" and "install-fiji /x" in failure["error"]
        worker.send("hello", request={"action": "hello", "plugin_version": version()})
        dialog = worker.until_terminal("hello")[-1]["outputs"]["dialog"]["apg"]  # the table's fields for the dialog
        assert next(f for f in dialog if f["key"] == "center")["default"] == 0.5
        image = stardist_image[:128, :128]
        worker.send("first", request=raw_request(image, tmp_path))
        responses = worker.until_terminal("first")
        stages = [r.get("message") for r in responses if r["responseType"] == "UPDATE"]
        assert "loading the model" in stages and "encoding the image" in stages
        done = responses[-1]["outputs"]
        assert done["encoded"] == 1
        from microsam_fiji.rois.decode import rois_to_labels

        np.testing.assert_array_equal(rois_to_labels(done["rois"], image.shape),
                                      reference_array(image, demo_model))
        # cancel a task on a new image: the loaded model and the first image's embeddings stay
        worker.send("cancelled", request=raw_request(stardist_image[128:256, :128], tmp_path, name="other"))
        worker.send("cancelled", request_type="CANCEL")
        assert worker.until_terminal("cancelled")[-1]["responseType"] == "CANCELATION"
        worker.send("again", request=raw_request(image, tmp_path, "center=0.3"))
        again = worker.until_terminal("again")
        assert again[-1]["outputs"]["encoded"] == 0
        assert "loading the model" not in [r.get("message") for r in again]
        # what the user must know about a result comes back for ImageJ's Log (here: the image was rescaled)
        tiny = (image.astype(np.float32) * np.float32(1e-30))[:96, :96]
        worker.send("rescaled", request=raw_request(tiny, tmp_path, name="tiny"))
        outputs = worker.until_terminal("rescaled")[-1]["outputs"]
        assert len(outputs["warnings"]) == 1 and "rescaled" in outputs["warnings"][0]
    finally:
        code = worker.close()  # stdin closed: the worker exits by itself
    assert code == 0
    assert "stray text from a library" not in "".join(worker.lines)


def reference_array(image, demo_model, **params):
    from microsam_fiji import segment

    return segment(image, demo_model, **params)


def test_worker_exits_when_imagej_closes_its_stdin(tmp_path):
    worker = WorkerProcess(tmp_path)
    worker.send("t", script="task.outputs['n'] = 42")
    assert worker.until_terminal("t")[-1]["outputs"] == {"n": 42}
    assert worker.close() == 0


def test_macro_in_imagej_with_its_main_window(installed, images, tmp_path, demo_model):
    """``java -jar ij.jar -macro``: ImageJ's window, the ROI Manager as a window, the same labels."""
    a, _ = images
    macro = f"""
open("{a}");
run("micro-sam APG", "labels=[{tmp_path}/gui_labels.tif]");
File.saveString("" + roiManager("count") + " " + (getTitle() == "a.tif"), "{tmp_path}/gui.txt");
run("Quit");
"""
    done = run_imagej(installed, macro, tmp_path, batch=False, timeout=400)
    assert (tmp_path / "gui.txt").is_file(), f"{done.stdout}\n{done.stderr}"
    expected = reference(a, demo_model)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "gui_labels.tif"), expected)
    count, same_image = (tmp_path / "gui.txt").read_text().split()
    assert int(count) == len(np.unique(expected)) - 1 and same_image == "1"


def test_installed_batch_folder_script_runs_through_the_plugin(batch_run, images, demo_model):
    """fiji-scripts/batch_folder.ijm, as installed into macros/, unchanged on the plugin: good images done and
    equal to segment, the non-image file skipped, no dialog."""
    tmp, values = batch_run
    a, b = images
    assert values.get("batch_done") == "1"
    out = tmp / "out"
    np.testing.assert_array_equal(tifffile.imread(out / "a_labels.tif"), reference(a, demo_model))
    np.testing.assert_array_equal(tifffile.imread(out / "b_labels.tif"), reference(b, demo_model))
    assert not (out / "notes_labels.tif").exists()


def test_stack_through_the_plugin_equals_segment(batch_run, images, demo_model):
    from microsam_fiji.rois.decode import rois_to_labels

    tmp, _ = batch_run
    stack = images[0].parent / "stack.tif"
    expected = reference(stack, demo_model)
    assert expected.shape == (2, 160, 160) and expected.max() > 0
    np.testing.assert_array_equal(tifffile.imread(tmp / "stack_labels.tif"), expected)
    np.testing.assert_array_equal(rois_to_labels(tmp / "stack_RoiSet.zip", expected.shape), expected)


# --- Esc during encoding, a Python without the package, the worker log -----------------------------------------------
# Through the real plugin in real ImageJ (Xvfb): Esc during a long encoding cancels in seconds and keeps
# the worker and its model; a Python without the package is named as such, with the fix; the worker log lives in a
# folder of the user's own, its lines are dated, and a killed call's scratch folder is removed at the next start.

def test_esc_during_encoding_and_preview_then_ok_keep_worker_and_model(installed, stardist_image, tmp_path):
    """The demo model on real nuclei: an image's passes (encoder and instance decoder at 1024 px) run 10-20 s on
    this CPU, a real slow encoding. Esc during it cancels within 2 s; then Preview toggled during an encoding and
    OK returns the OK'd result."""
    from microsam_fiji.models.demo import DEMO_CHECKPOINT as ckpt

    image = tmp_path / "nuclei.tif"
    tifffile.imwrite(image, stardist_image, imagej=True)
    harness = tmp_path / "harness"
    harness.mkdir()
    jar = next((installed / "plugins").glob("micro_sam_fiji*.jar"))
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", f"{IJ_JAR}{os.pathsep}{jar}",
                    "-d", str(harness), *(str(Path(__file__).parent / "java" / name)
                                           for name in ("CancelHarness.java", "DialogHarness.java"))], check=True)
    cmd = [*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp_path}",
           f"-Dplugins.dir={installed}", "-cp", f"{IJ_JAR}{os.pathsep}{jar}{os.pathsep}{harness}", "CancelHarness",
           str(image), str(ckpt)]
    done = run_watched(cmd, 500, env=dict(os.environ, HOME=str(tmp_path)))
    values = printed(done.stdout)
    assert done.returncode == 0 and "second_encoded" in values, f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    print(values)
    assert float(values["cancel_seconds"]) < 2.0, values
    assert values["first_completed"] == "0"  # the cancelled call added nothing
    assert values["pid_after"] == values["pid_before"] != ""  # the same worker ...
    assert values["second_model_loads"] == "1"  # ... with the model it had loaded
    assert values["second_encoded"] == "1"
    # Preview ticked (its encoding starts), unticked 4 s later, OK: the OK'd call's result, on the same worker
    assert values["third_completed"] == "2", values
    assert values["pid_after_preview"] == values["pid_before"] and values["third_model_loads"] == "1"
    assert int(values["third_count"]) > 0


def test_python_without_the_package_names_the_install_and_log_is_per_user_and_dated(installed, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    bare = venv / "bin" / "python"
    props = installed / "plugins" / "micro-sam-fiji.properties"
    saved = props.read_text()
    image = tmp_path / "a.tif"
    tifffile.imwrite(image, np.zeros((32, 32), np.uint8), imagej=True)
    # a call killed mid-run two hours ago left its scratch folder; a recent one may be another ImageJ's call
    user = os.environ.get("USER") or __import__("getpass").getuser()
    stale, recent = (tmp_path / f"micro-sam-fiji-{user}" / name for name in ("call-1", "call-2"))
    for folder in (stale, recent):
        folder.mkdir(parents=True)
        (folder / "image.raw").write_bytes(b"0" * 10)
    os.utime(stale, (os.path.getmtime(stale) - 7200,) * 2)
    try:
        props.write_text("\n".join(f"python={bare}" if line.startswith("python=") else line
                                   for line in saved.splitlines()) + "\n")
        done = run_imagej(installed, f'open("{image}");\nrun("micro-sam APG", "mode=ais");\n', tmp_path, timeout=120)
    finally:
        props.write_text(saved)
    text = done.stdout + done.stderr
    assert "does not have micro-sam-fiji" in text and "pip install micro-sam-fiji" in text, text
    assert "next call starts a new one" not in text
    assert not stale.exists() and recent.exists()
    logs = list(tmp_path.glob(f"micro-sam-fiji-*{os.sep}worker.log"))
    assert len(logs) == 1 and "ModuleNotFoundError" in logs[0].read_text()
    assert logs[0].read_text().split(" [plugin] ")[0].count(":") == 2  # a dated first line
