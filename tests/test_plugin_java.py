"""Unit tests of the ImageJ plugin's Java classes on their own, without ImageJ running: JUnit 4 test classes under
``tests/java/`` (package microsam_fiji) compiled against ``fiji-plugin/src`` (``-sourcepath``: only the classes they
use) and Debian's ``junit4`` jars, then run with JUnitCore. A failing Java test fails here with JUnit's report."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "fiji-plugin" / "src"
TESTS = Path(__file__).parent / "java"
# Debian's junit4 package (JUnit 4.13) and the Hamcrest it depends on (libhamcrest-java)
JUNIT = (Path("/usr/share/java/junit4.jar"), Path("/usr/share/java/hamcrest-core.jar"))


def run_junit(name: str, tmp: Path) -> int:
    """Compile ``tests/java/<name>.java`` with the plugin's flags, run it with JUnitCore, return how many tests ran;
    fail with JUnit's report when a test failed."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if javac is None or java is None:
        pytest.fail("the plugin's Java tests need a JDK (javac): install one (Debian: apt-get install "
                    "default-jdk-headless)", pytrace=False)
    missing = [jar for jar in JUNIT if not jar.is_file()]
    if missing:
        pytest.fail(f"the plugin's Java tests need JUnit 4 ({missing[0]} is missing): install it (Debian: "
                    "apt-get install junit4)", pytrace=False)
    junit = os.pathsep.join(str(jar) for jar in JUNIT)
    classes = tmp / "classes"
    built = subprocess.run([javac, "--release", "8", "-Xlint:-options", "-encoding", "UTF-8", "-cp", junit,
                            "-sourcepath", str(SOURCES), "-d", str(classes), str(TESTS / f"{name}.java")],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0:
        pytest.fail(f"{name}.java does not compile:\n{built.stdout}{built.stderr}", pytrace=False)
    done = subprocess.run([java, "-cp", os.pathsep.join([str(classes), junit]), "org.junit.runner.JUnitCore",
                           f"microsam_fiji.{name}"], capture_output=True, text=True, timeout=120)
    ok = re.search(r"^OK \((\d+) tests?\)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or ok is None:
        # JUnit's report less its progress line (a dot per test, E per failure)
        report = "\n".join(line for line in done.stdout.splitlines() if not re.fullmatch(r"[.EI]+", line))
        pytest.fail(f"{name} (JUnit, exit status {done.returncode}):\n{report}\n{done.stderr}".rstrip(),
                    pytrace=False)
    return int(ok.group(1))


def test_json_round_trips_escapes_numbers_and_rejects_malformed_input(tmp_path):
    """Json.java, the worker protocol's hand-written reader and writer: nested objects and arrays, quotes,
    backslashes, é and 𝄞 (raw and as Python's \\u escapes, surrogate pairs), control characters, integers,
    negatives, floats, exponents, true/false/null; malformed input fails with IllegalArgumentException."""
    assert run_junit("JsonTest", tmp_path) >= 199  # every table row ran, not an empty or partial run


def test_channel_speaks_appose_lines_routes_responses_and_reports_a_crash(tmp_path):
    """Channel.java, the Appose message layer on pipes in place of a worker's stdin and stdout: EXECUTE and CANCEL
    lines, responses to their task by id, stray output skipped, the end of stdout a CRASH for the waiting task."""
    assert run_junit("ChannelTest", tmp_path) >= 4
