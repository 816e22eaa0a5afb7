"""The ImageJ plugin (warm worker) against the in-process command and against segment_with_cli.ijm, one run.

    xvfb-run -a python bench/fiji_plugin_bench.py [--images 4] [--cli-images 2]

Same image files for every path (256 x 256 crops of the test nuclei image, each new to the model):

* in-process: ImageJ started from Python (``microsam_fiji.imagej.session``), ``run("micro-sam APG", ...)``;
* plugin: ``java -jar ij.jar -batch`` on a folder prepared by ``microsam-fiji install-fiji``, the same macro;
* segment_with_cli.ijm: the same ImageJ, the fiji-script that runs the ``microsam-fiji`` program per image.

Every time is taken inside the macro (``getTime()`` around the ``run`` call), so all paths are measured alike.
The plugin's transport overhead is its macro time minus the worker's own time for the same call. Targets
(issue 10): later calls within 10 % of the in-process command, >= 1.5x faster than segment_with_cli.ijm on a new
image, a threshold re-run <= 25 % of a new-image call. Exit status 1 when a target is missed."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

import microsam_fiji  # noqa: F401 - which checkout runs (PYTHONPATH) is printed with --plugin-only

ROOT = Path(__file__).resolve().parents[1]
IJ_JAR = "/usr/share/java/ij.jar"
LAST = "microsam_fiji.MicroSamAPG.lastResult"


def crops(folder: Path, n: int) -> list[Path]:
    image = tifffile.imread(ROOT / "tests" / "data" / "img2d.tif")
    corners = [(0, 0), (256, 256), (0, 256), (256, 0), (128, 128), (64, 192)]
    paths = []
    for i, (y, x) in enumerate(corners[:n]):
        path = folder / f"crop{i}.tif"
        tifffile.imwrite(path, image[y:y + 256, x:x + 256], imagej=True)
        paths.append(path)
    return paths


def timing_macro(images: list[Path], rerun: bool, worker_seconds: bool) -> str:
    lines = []
    for i, path in enumerate(images):
        lines += [f'open("{path}");', "t = getTime();", 'run("micro-sam APG", "replace");',
                  f'print("new{i}=" + (getTime() - t) / 1000);']
        if worker_seconds:
            lines.append(f'print("worker{i}=" + call("{LAST}", "seconds"));')
        if rerun:
            lines += ["t = getTime();", 'run("micro-sam APG", "center=0.3 boundary=0.6 replace");',
                      f'print("rerun{i}=" + (getTime() - t) / 1000);']
        lines.append("close();")
    return "\n".join(lines) + "\n"


def cli_macro(images: list[Path], script: Path, cli: Path) -> str:
    lines = []
    for i, path in enumerate(images):
        lines += [f'open("{path}");', "t = getTime();", f'runMacro("{script}", "cli=[{cli}] replace");',
                  f'print("cli{i}=" + (getTime() - t) / 1000);', "close();"]
    return "\n".join(lines) + "\n"


def parse(output: str) -> dict[str, float]:
    values = {}
    for line in output.splitlines():
        key, _, value = line.partition("=")
        if value and key.isidentifier():
            try:
                values[key] = float(value)
            except ValueError:
                pass
    return values


def run_imagej(folder: Path, macro: str, tmp: Path) -> dict[str, float]:
    path = tmp / f"bench-{time.monotonic_ns()}.ijm"
    path.write_text(macro)
    done = subprocess.run(["java", f"-Djava.io.tmpdir={tmp}", f"-Dplugins.dir={folder}", "-jar", IJ_JAR,
                           "-ijpath", str(folder), "-batch", str(path)], capture_output=True, text=True,
                          timeout=3600)
    values = parse(done.stdout)
    if not values:
        raise SystemExit(f"ImageJ run failed:\n{done.stdout}\n{done.stderr}")
    return values


IN_PROCESS = """
import sys
from jpype import JClass
from microsam_fiji.imagej import run_macro, session
session.start()
run_macro(sys.argv[1])
print(JClass("ij.IJ").getLog(), flush=True)  # the macro's print() lines
"""


def run_in_process(macro: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", IN_PROCESS, macro], capture_output=True, text=True, timeout=3600)
    values = parse(done.stdout)
    if not values:
        raise SystemExit(f"in-process run failed:\n{done.stdout}\n{done.stderr}")
    return values


def series(values: dict[str, float], prefix: str) -> list[float]:
    keys = [k for k in values if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return [values[k] for k in sorted(keys, key=lambda k: int(k[len(prefix):]))]


def fmt(v: list[float]) -> str:
    if not v:
        return "-"
    return f"{np.median(v):6.2f} s ({min(v):.2f}-{max(v):.2f}, n={len(v)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4, help="new images per path (default 4, at most 6)")
    parser.add_argument("--cli-images", type=int, default=2, help="images through segment_with_cli.ijm (default 2)")
    parser.add_argument("--plugin-only", action="store_true",
                        help="only the plugin's calls, no targets (e.g. its first call, for comparing two checkouts: "
                             "PYTHONPATH=<checkout>/src python bench/fiji_plugin_bench.py --plugin-only)")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        raise SystemExit("needs a display: run under xvfb-run -a")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="plugin-bench-") as tmp:
        tmp = Path(tmp)
        images = crops(tmp, args.images)
        folder = tmp / "ImageJ"
        (folder / "plugins").mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "microsam_fiji.cli", "install-fiji", str(folder)], check=True,
                       capture_output=True)
        if args.plugin_only:
            plugin = run_imagej(folder, timing_macro(images, rerun=True, worker_seconds=True), tmp)
            first, later = series(plugin, "new")[0], series(plugin, "new")[1:]
            print(f"load average at end: {os.getloadavg()[0]:.2f}")
            print(f"plugin ({Path(sys.modules['microsam_fiji'].__file__).parents[1]}): first call (worker start, "
                  f"model load, encoding) {first:.2f} s; later new images {fmt(later)}")
            return 0
        inproc = run_in_process(timing_macro(images, rerun=True, worker_seconds=False))
        plugin = run_imagej(folder, timing_macro(images, rerun=True, worker_seconds=True), tmp)
        cli = Path(sys.executable).with_name("microsam-fiji")
        script = folder / "macros" / "segment_with_cli.ijm"
        via_cli = run_imagej(folder, cli_macro(images[:args.cli_images], script, cli), tmp)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"raw: plugin {plugin}\nraw: in-process {inproc}\nraw: segment_with_cli.ijm {via_cli}")

    p_new, i_new = series(plugin, "new"), series(inproc, "new")
    p_rerun, i_rerun = series(plugin, "rerun"), series(inproc, "rerun")
    overhead = [m - w for m, w in zip(p_new + p_rerun, series(plugin, "worker"))]
    rows = [("first call (worker start, model load, encoding)", [p_new[0]], [i_new[0]]),
            ("later calls on new images", p_new[1:], i_new[1:]),
            ("re-runs with other thresholds", p_rerun, i_rerun),
            ("segment_with_cli.ijm, per new image", series(via_cli, "cli"), [])]
    print(f"\n{'':52s} {'plugin (warm worker)':32s} {'in-process command':32s}")
    for name, p, i in rows:
        print(f"{name:52s} {fmt(p):32s} {fmt(i):32s}")
    print(f"plugin transport (macro time - worker time), new images: {fmt(overhead[:len(p_new)][1:])}")

    later, later_inproc = float(np.median(p_new[1:])), float(np.median(i_new[1:]))
    cli_time, rerun = float(np.median(series(via_cli, "cli"))), float(np.median(p_rerun))
    targets = [("later calls within 10 % of the in-process command", later / later_inproc, "<=", 1.10),
               ("speed-up over segment_with_cli.ijm on a new image", cli_time / later, ">=", 1.5),
               ("threshold re-run / new-image call", rerun / later, "<=", 0.25)]
    ok = True
    print()
    for name, value, op, limit in targets:
        met = value <= limit if op == "<=" else value >= limit
        ok &= met
        print(f"{'met ' if met else 'MISS'}  {name}: {value:.2f} (target {op} {limit})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
