"""Build the ImageJ plugin's jar from ``fiji-plugin/`` and find the one that ships in this package.

The jar is compiled with ``javac --release 8`` against ImageJ 1.x's ``ij.jar`` only, so one jar runs in Fiji
(Java 8 or 21) and in plain ImageJ. Its manifest records a digest of the Java sources and the package version;
in a source checkout :func:`ensure_jar` rebuilds whenever that digest no longer matches the sources, and the
wheel build (``setup.py``) builds it into the package: the jar and its source cannot drift. The jar is written by
:mod:`zipfile` with fixed timestamps and sorted entries, so the same sources give the same bytes."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ..errors import UserError

JAR_NAME = "micro_sam_fiji.jar"  # ImageJ 1.x installs only jars whose name has an underscore
BUILT = Path(__file__).with_name("_built")  # package data: the jar and the fiji-scripts of a build
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root when running from a source checkout
SOURCE = CHECKOUT / "fiji-plugin"
DIGEST_KEY = "MicroSam-Fiji-Source-Digest"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_version() -> str:
    from .tasks import version

    return version()


def source_files(source: Path = SOURCE) -> list[Path]:
    return sorted([*source.rglob("*.java"), source / "plugins.config"])


def source_digest(source: Path = SOURCE, version: str | None = None) -> str:
    h = hashlib.sha256((version or package_version()).encode())
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


def build_jar(out: Path, source: Path = SOURCE, ij_jar: str | None = None, version: str | None = None) -> Path:
    """Compile the plugin and write ``out``; needs a JDK (javac) and ImageJ's ij.jar."""
    from ..bridge.jvm import find_ij_jar
    from ..tiff_io import atomic_write

    javac = shutil.which("javac")
    if javac is None:
        raise UserError("building the ImageJ plugin needs a JDK (javac): install one (Debian: apt-get install "
                        "default-jdk-headless) or use a micro-sam-fiji wheel, which contains the built plugin")
    version = version or package_version()
    ij = find_ij_jar(ij_jar)
    with tempfile.TemporaryDirectory(prefix="microsam-fiji-jar-") as tmp:
        tmp = Path(tmp)
        generated = tmp / "gen" / "microsam_fiji" / "Version.java"
        generated.parent.mkdir(parents=True)
        generated.write_text("package microsam_fiji;\n\n/** Written by microsam_fiji.plugin.jar at build time. */\n"
                             f"final class Version {{\n\tstatic final String VERSION = \"{version}\";\n}}\n")
        classes = tmp / "classes"
        sources = [str(p) for p in source_files(source) if p.suffix == ".java"] + [str(generated)]
        done = subprocess.run([javac, "--release", "8", "-Xlint:-options", "-encoding", "UTF-8", "-nowarn",
                               "-cp", str(ij), "-d", str(classes), *sources], capture_output=True, text=True)
        if done.returncode != 0:
            raise UserError(f"javac failed: {done.stderr.strip().splitlines()[0] if done.stderr else done.returncode}")
        manifest = (f"Manifest-Version: 1.0\nImplementation-Title: micro-sam-fiji\nImplementation-Version: {version}\n"
                    f"{DIGEST_KEY}: {source_digest(source, version)}\n\n")
        entries = {"META-INF/MANIFEST.MF": manifest.encode(),
                   "plugins.config": (source / "plugins.config").read_bytes()}
        for path in sorted(classes.rglob("*.class")):
            entries[str(path.relative_to(classes))] = path.read_bytes()

        def write(tmp_jar):
            with zipfile.ZipFile(tmp_jar, "w", zipfile.ZIP_DEFLATED) as z:
                for name, data in entries.items():
                    info = zipfile.ZipInfo(name, _EPOCH)
                    info.compress_type = zipfile.ZIP_DEFLATED
                    z.writestr(info, data)

        return atomic_write(out, write)


def is_checkout() -> bool:
    return (SOURCE / "plugins.config").is_file()


def ensure_jar() -> Path:
    """The plugin jar of this installation, rebuilt first in a source checkout whose sources changed."""
    jar = BUILT / JAR_NAME
    if is_checkout():
        if jar_digest(jar) != source_digest():
            build_jar(jar)
        return jar
    if not jar.is_file():
        raise UserError("this micro-sam-fiji installation has no ImageJ plugin jar: reinstall it from a wheel, or "
                        "install a JDK and reinstall from source")
    return jar


def fiji_scripts() -> list[Path]:
    """The ``.ijm`` macros that ``install-fiji`` puts into ``macros/`` (from the checkout, else the package)."""
    folder = CHECKOUT / "fiji-scripts" if is_checkout() else BUILT / "fiji-scripts"
    return sorted(folder.glob("*.ijm"))


def build_package_data() -> None:
    """For the wheel build: the jar and a copy of the fiji-scripts into :data:`BUILT`."""
    ensure_jar()
    scripts = BUILT / "fiji-scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    for script in (CHECKOUT / "fiji-scripts").glob("*.ijm"):
        shutil.copyfile(script, scripts / script.name)
