"""Running a real ImageJ 1.x as a user does (``java -jar ij.jar`` on an install-fiji folder, under Xvfb), and the
``microsam-fiji`` program, for the tests of the plugin, the scripts and the installer."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def xvfb_run(screen: bool = True) -> list[str]:
    """The prefix that gives a started ImageJ a virtual display of its own (``screen``: large enough for the
    plugin's dialogs and screenshots), from a range of display numbers of the pytest-xdist worker's own: two
    workers starting an ImageJ at the same moment would otherwise both pick the first free number, and one Xvfb
    would fail."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 100 + 100 * (int(worker) if worker.isdigit() else 0)
    return ["xvfb-run", "-a", "-n", str(first), *(["-s", "-screen 0 1280x1024x24"] if screen else [])]


def imagej_missing(display: bool) -> str | None:
    """What this machine lacks for the ImageJ tests, with the fix, or None."""
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        return "Java (no `java` on PATH): install a JRE (Debian: apt-get install default-jre) or set JAVA_HOME"
    from microsam_fiji.core.errors import UserError
    from microsam_fiji.imagej.jvm import find_ij_jar

    try:
        find_ij_jar()
    except UserError as err:
        return f"ImageJ ({err})"
    if display:
        if not os.environ.get("DISPLAY"):
            return "a display ($DISPLAY is unset): run the tests under xvfb-run -a"
        import scyjava

        if scyjava.jvm_started() and scyjava.jimport("java.awt.GraphicsEnvironment").isHeadless():
            return "a display (this process started Java headless): run the tests under xvfb-run -a"
    return None


def require_imagej(display: bool) -> None:
    """Fail (CI) or skip (elsewhere) the current test when :func:`imagej_missing` names something."""
    missing = imagej_missing(display)
    if missing is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true, and the ImageJ tests need {missing}", pytrace=False)
    pytest.skip(f"needs {missing}")


IJ_JAR = Path("/usr/share/java/ij.jar")
# what the `microsam-fiji` console script runs (`-m microsam_fiji.cli` needs a cli/__main__.py)
CLI_MAIN = "import sys; from microsam_fiji.cli import main; sys.exit(main())"
CLI = [sys.executable, "-c", CLI_MAIN]


def run_cli(*args, check=True):
    done = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def fresh_imagej_folder(root: Path) -> Path:
    folder = root / "ImageJ"
    (folder / "plugins").mkdir(parents=True)
    return folder


def run_watched(cmd: list[str], timeout: int, env=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group; past ``timeout`` (a dialog waiting for a click?) the whole group
    (Xvfb, ImageJ, the worker) is killed and the test fails."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        shown = cmd[cmd.index("java"):][:2] if "java" in cmd else cmd[:2]
        pytest.fail(f"{shown} did not finish within {timeout} s (a dialog?):\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def run_imagej(folder: Path, macro: str, tmp: Path, *, batch: bool = True, timeout: int = 600, env=None):
    """Run ``macro`` in a new ImageJ on ``folder`` under the watchdog of :func:`run_watched`."""
    path = tmp / "macro.ijm"
    path.write_text(macro)
    mode = ["-batch", str(path)] if batch else ["-macro", str(path)]
    cmd = [*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp}", f"-Dplugins.dir={folder}", "-jar", str(IJ_JAR),
           "-ijpath", str(folder), *mode]
    return run_watched(cmd, timeout, env=env)


def printed(output: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line and " " not in line.split("=")[0])


def worker_log(tmp: Path) -> str:
    logs = list(tmp.glob("micro-sam-fiji-*/worker.log"))  # the folder is per user: <tmp>/micro-sam-fiji-<user>/
    return logs[0].read_text() if logs else ""


