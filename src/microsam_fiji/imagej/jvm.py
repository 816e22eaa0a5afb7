"""Start ImageJ 1.x inside this Python process (scyjava/JPype), once per process.

A JVM cannot be restarted or reconfigured once it runs, so the first call decides: the ``ij.jar`` on the class
path and whether AWT is headless. Headless is enough for ImagePlus, ROIs and their encoders; the RoiManager, the
menus and macro ``run()`` need a display (Xvfb on servers)."""
from __future__ import annotations

import os
from pathlib import Path

from microsam_fiji.core.errors import UserError

DEFAULT_IJ_JARS = ("/usr/share/java/ij.jar", "/usr/share/imagej/ij.jar")
IJ_JAR_ENV = "MICROSAM_FIJI_IJ_JAR"

_started: dict[str, object] = {}


def find_ij_jar(ij_jar: str | os.PathLike | None = None) -> Path:
    candidates = [ij_jar] if ij_jar else [os.environ.get(IJ_JAR_ENV), *DEFAULT_IJ_JARS]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    if ij_jar:
        raise UserError(f"ImageJ jar '{ij_jar}' not found: pass the path of ij.jar")
    raise UserError(f"no ImageJ jar found: install ImageJ (Debian: apt-get install imagej) or set {IJ_JAR_ENV} "
                    "to the path of ij.jar")


def start_imagej(ij_jar: str | os.PathLike | None = None, headless: bool | None = None) -> dict:
    """Start the JVM with ImageJ 1.x on the class path (no-op if this process already started it).

    ``headless=None`` picks a display when ``$DISPLAY`` is set. Returns how it was started."""
    import scyjava

    if scyjava.jvm_started():
        if not _started:
            _started.update(ij_jar=None, headless=_jvm_headless())  # started by someone else (e.g. pyimagej)
        return dict(_started)
    jar = find_ij_jar(ij_jar)
    if headless is None:
        headless = not os.environ.get("DISPLAY")
    # never let scyjava download a JDK: there may be no network, and the machine's Java serves
    scyjava.config.set_java_constraints(fetch="never")
    scyjava.config.add_classpath(str(jar))
    scyjava.config.add_option(f"-Djava.awt.headless={'true' if headless else 'false'}")
    scyjava.start_jvm()
    _started.update(ij_jar=str(jar), headless=headless)
    return dict(_started)


def _jvm_headless() -> bool:
    import scyjava

    return bool(scyjava.jimport("java.awt.GraphicsEnvironment").isHeadless())


def jclass(name: str):
    """The Java class ``name`` (the JVM must be running)."""
    from jpype import JClass

    return JClass(name)
