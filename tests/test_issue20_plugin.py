"""Issue 20 through the real plugin in real ImageJ (Xvfb): Esc during a long encoding cancels in seconds and keeps
the worker and its model; a Python without the package is named as such, with the fix; the worker log lives in a
folder of the user's own, its lines are dated, and a killed call's scratch folder is removed at the next start."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import tifffile
from helpers.models import build_random_checkpoint
from helpers.imagej import IJ_JAR, printed, run_imagej, run_watched, worker_log


def test_esc_during_encoding_and_preview_then_ok_keep_worker_and_model(installed, tmp_path):
    """A random vit_b on a 1024x1024 image: its encoder runs tens of seconds on a CPU, a real slow encoding. Esc
    during it cancels within 2 s; then Preview toggled during an encoding and OK returns the OK'd result."""
    ckpt = build_random_checkpoint(tmp_path / "vit_b.pt", "vit_b")
    image = tmp_path / "big.tif"
    tifffile.imwrite(image, np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8), imagej=True)
    harness = tmp_path / "harness"
    harness.mkdir()
    jar = next((installed / "plugins").glob("micro_sam_fiji*.jar"))
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", f"{IJ_JAR}{os.pathsep}{jar}",
                    "-d", str(harness), *(str(Path(__file__).parent / "java" / name)
                                           for name in ("CancelHarness.java", "DialogHarness.java"))], check=True)
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", "java", f"-Djava.io.tmpdir={tmp_path}",
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
