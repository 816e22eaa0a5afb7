"""Compile the ImageJ plugin (``fiji-plugin/``) into a jar: standard library only, so the wheel build
(``setup.py``, in an isolated environment without this package's dependencies) can load this file by path.

``javac --release 8`` against ImageJ 1.x's ``ij.jar`` only: one jar runs in Fiji (Java 8 or 21) and in plain
ImageJ. The manifest records a digest of the sources and the version (:func:`source_digest`), which
:mod:`microsam_fiji.installer.jar` compares to rebuild a stale jar. Entries are sorted and carry a fixed timestamp,
so the same sources and compiler give the same jar."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

DIGEST_KEY = "MicroSam-Fiji-Source-Digest"
IJ_JAR_ENV = "MICROSAM_FIJI_IJ_JAR"
DEFAULT_IJ_JARS = ("/usr/share/java/ij.jar", "/usr/share/imagej/ij.jar")
_EPOCH = (1980, 1, 1, 0, 0, 0)


class BuildError(RuntimeError):
    """The jar cannot be built here; the message names what is missing."""


RESOURCE_SUFFIXES = (".html",)  # files the plugin reads from its jar (the dialog's Help page), copied as they are


def source_files(source: Path) -> list[Path]:
    resources = [p for suffix in RESOURCE_SUFFIXES for p in Path(source).rglob(f"*{suffix}")]
    return sorted([*Path(source).rglob("*.java"), *resources, Path(source) / "plugins.config"])


def source_digest(source: Path, version: str) -> str:
    h = hashlib.sha256(version.encode())
    for path in source_files(source):
        h.update(str(path.relative_to(source)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def jar_digest(jar: Path) -> str | None:
    try:
        with zipfile.ZipFile(jar) as z:
            manifest = z.read("META-INF/MANIFEST.MF").decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        return None
    for line in manifest.splitlines():
        if line.startswith(DIGEST_KEY + ":"):
            return line.split(":", 1)[1].strip()
    return None


def find_ij_jar() -> Path:
    for candidate in (os.environ.get(IJ_JAR_ENV), *DEFAULT_IJ_JARS):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise BuildError(f"building the ImageJ plugin needs ImageJ's ij.jar: install ImageJ (Debian: apt-get install "
                     f"imagej) or set {IJ_JAR_ENV}")


def build_jar(out: Path, source: Path, version: str, ij_jar: Path | None = None) -> Path:
    """Compile ``source`` and write the jar to ``out`` (replaced atomically)."""
    javac = shutil.which("javac")
    if javac is None:
        raise BuildError("building the ImageJ plugin needs a JDK (javac): install one (Debian: apt-get install "
                         "default-jdk-headless) or use a micro-sam-fiji wheel, which contains the built plugin")
    ij_jar = ij_jar or find_ij_jar()
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="microsam-fiji-jar-") as tmp_name:
        tmp = Path(tmp_name)
        generated = tmp / "gen" / "microsam_fiji" / "Version.java"
        generated.parent.mkdir(parents=True)
        generated.write_text("package microsam_fiji;\n\n/** Written by the build (jarbuild.py). */\n"
                             f"final class Version {{\n\tstatic final String VERSION = \"{version}\";\n}}\n")
        classes = tmp / "classes"
        sources = [str(p) for p in source_files(source) if p.suffix == ".java"] + [str(generated)]
        done = subprocess.run([javac, "--release", "8", "-Xlint:-options", "-encoding", "UTF-8", "-nowarn",
                               "-cp", str(ij_jar), "-d", str(classes), *sources], capture_output=True, text=True)
        if done.returncode != 0:
            first = done.stderr.strip().splitlines()[0] if done.stderr.strip() else f"exit {done.returncode}"
            raise BuildError(f"javac failed: {first}")
        manifest = (f"Manifest-Version: 1.0\nImplementation-Title: micro-sam-fiji\nImplementation-Version: "
                    f"{version}\n{DIGEST_KEY}: {source_digest(source, version)}\n\n")
        entries = {"META-INF/MANIFEST.MF": manifest.encode(),
                   "plugins.config": (Path(source) / "plugins.config").read_bytes()}
        for path in sorted(classes.rglob("*.class")):
            entries[path.relative_to(classes).as_posix()] = path.read_bytes()
        for path in source_files(source):
            if path.suffix in RESOURCE_SUFFIXES:  # src/microsam_fiji/help.html -> microsam_fiji/help.html
                entries[path.relative_to(Path(source) / "src").as_posix()] = path.read_bytes()
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in entries.items():
                info = zipfile.ZipInfo(name, _EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
        os.replace(partial, out)
    return out
