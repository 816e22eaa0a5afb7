"""The ImageJ plugin's jar of this installation, and the fiji-scripts that go with it.

A wheel carries the jar built by ``setup.py`` (:mod:`.jarbuild`); a source checkout rebuilds it in
:func:`ensure_jar` whenever the digest in its manifest no longer matches the Java sources and the package
version, so the jar and its source cannot drift."""
from __future__ import annotations

from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.version import package_version
from microsam_fiji.installer import jarbuild

JAR_NAME = "micro_sam_fiji.jar"  # ImageJ 1.x installs only jars whose name has an underscore
BUILT = Path(__file__).with_name("_built")  # package data: the jar and the fiji-scripts of a build
CHECKOUT = Path(__file__).resolve().parents[3]  # the repository root when running from a source checkout
SOURCE = CHECKOUT / "fiji-plugin"


def source_digest() -> str:
    return jarbuild.source_digest(SOURCE, package_version())


def is_checkout() -> bool:
    return (SOURCE / "plugins.config").is_file()


def build_jar(out: Path) -> Path:
    try:
        return jarbuild.build_jar(out, SOURCE, package_version())
    except jarbuild.BuildError as err:
        raise UserError(str(err)) from None


def ensure_jar() -> Path:
    """The plugin jar of this installation, rebuilt first in a source checkout whose sources changed."""
    jar = BUILT / JAR_NAME
    if is_checkout():
        if jarbuild.jar_digest(jar) != source_digest():
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
