"""Unit tests of the ImageJ plugin's Java classes on their own, without ImageJ running: a test main under
``tests/java/`` compiled against ``fiji-plugin/src`` (``-sourcepath``: only the classes it uses) and run with
``java``. It prints ``FAIL ...`` lines and ``failures=N``."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "fiji-plugin" / "src"
TESTS = Path(__file__).parent / "java"


def run_java_test(name: str, tmp: Path) -> str:
    """Compile ``tests/java/<name>.java`` (package microsam_fiji) with the plugin's flags, run it, return stdout."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.fail("the plugin's Java tests need a JDK (javac): install one (Debian: apt-get install "
                    "default-jdk-headless)", pytrace=False)
    classes = tmp / "classes"
    subprocess.run([javac, "--release", "8", "-Xlint:-options", "-encoding", "UTF-8", "-sourcepath", str(SOURCES),
                    "-d", str(classes), str(TESTS / f"{name}.java")], check=True, timeout=300)
    done = subprocess.run([java, "-cp", str(classes), f"microsam_fiji.{name}"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and "failures=0" in done.stdout, f"{done.stdout}\n{done.stderr}"
    return done.stdout


def test_json_round_trips_escapes_numbers_and_rejects_malformed_input(tmp_path):
    """Json.java, the worker protocol's hand-written reader and writer: nested objects and arrays, quotes,
    backslashes, é and 𝄞 (raw and as Python's \\u escapes, surrogate pairs), control characters, integers,
    negatives, floats, exponents, true/false/null; malformed input fails with IllegalArgumentException."""
    out = run_java_test("JsonTest", tmp_path)
    assert int(out.split("checks=")[1].split()[0]) > 150  # the checks ran, not an early exit


def test_channel_speaks_appose_lines_routes_responses_and_reports_a_crash(tmp_path):
    """Channel.java, the Appose message layer on pipes in place of a worker's stdin and stdout: EXECUTE and CANCEL
    lines, responses to their task by id, stray output skipped, the end of stdout a CRASH for the waiting task."""
    out = run_java_test("ChannelTest", tmp_path)
    assert int(out.split("checks=")[1].split()[0]) >= 20
