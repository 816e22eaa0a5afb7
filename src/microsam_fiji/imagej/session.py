"""A bridge session: ImageJ running inside this Python process, the macro command registered, models loaded once.

Start it from Python, then use ImageJ/Fiji as usual; every macro can call ``run("micro-sam APG", "...")``::

    # plain ImageJ 1.x (any ij.jar; Debian: apt-get install imagej)
    from microsam_fiji.imagej import session
    s = session.start()                      # or start(ij="/path/to/ij.jar"), start(gui=True) opens ImageJ's window

    # Fiji, through pyimagej (needs network the first time pyimagej resolves Fiji's jars)
    s = session.start(fiji="/path/to/Fiji.app")   # mode="interactive"; then s.ij.ui().showUI()

or from a shell, which opens the window and returns when it is closed::

    microsam-fiji fiji --fiji /path/to/Fiji.app      # or: python -m microsam_fiji.imagej --fiji ...
    microsam-fiji fiji                               # plain ImageJ from ij.jar

Known limit (ImageJ 1.x): without ImageJ's main window (plain ij.jar, ``gui=False``), a macro error such as
"There are no images open" raised by ImageJ's own ``IJ.getImage()`` makes ImageJ call ``System.exit`` (its
command-line batch behaviour), which ends Python too; ``start(gui=True)``, ``microsam-fiji fiji`` and Fiji
have the window and only abort the macro. The ``micro-sam APG`` command itself never calls ``IJ.getImage()``.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.cache import ModelCache, shared_cache
from microsam_fiji.models.model import Model

_lock = threading.Lock()
_session: "Session | None" = None


class Session:
    """ImageJ running in this process: ``ij`` (the pyimagej gateway when started with Fiji, else None) and the
    models its macros load (:class:`~microsam_fiji.models.cache.ModelCache`, kept for the process)."""

    def __init__(self, ij=None, models: ModelCache | None = None):
        self.ij = ij
        self.models = models if models is not None else shared_cache()


def current() -> Session:
    """The running session, or a new one without starting anything (on a JVM started elsewhere)."""
    global _session
    with _lock:
        if _session is None:
            _session = Session()
        return _session


def start(ij: str | os.PathLike | None = None, fiji: str | os.PathLike | None = None, *, mode: str = "interactive",
          headless: bool | None = None, gui: bool = False, default_model: str | os.PathLike | Model | None = None,
          device: str | None = None) -> Session:
    """Start ImageJ in this process (once) and register the ``micro-sam APG`` macro command.

    ``ij``: path of an ``ij.jar`` (default: Debian's, or ``$MICROSAM_FIJI_IJ_JAR``); ``fiji``: a Fiji.app folder
    or a pyimagej endpoint, started with ``imagej.init(fiji, mode=mode)``. ``headless=None`` uses the display
    when ``$DISPLAY`` is set; macro ``run()`` and the ROI Manager need one. ``gui`` opens ImageJ's main window
    (plain ImageJ; for Fiji call ``session.ij.ui().showUI()``)."""
    from microsam_fiji.imagej.listener import (
        register,  # the listener needs the JVM: imported once it runs
    )

    global _session
    gateway = None
    if fiji is not None:
        gateway = _start_fiji(fiji, mode)
    else:
        from microsam_fiji.imagej.jvm import start_imagej

        start_imagej(ij, headless=headless)
    session = current()
    if gateway is not None:
        session.ij = gateway
    if device is not None:
        session.models.device = device
    session.models.set_default_model(default_model)
    register(session.models)
    if gui and fiji is None:
        open_imagej_window()
    return session


def _start_fiji(fiji: str | os.PathLike, mode: str):
    try:
        import imagej
    except ImportError:
        raise UserError("starting Fiji needs pyimagej: pip install pyimagej") from None
    endpoint = str(Path(fiji).expanduser()) if Path(str(fiji)).expanduser().exists() else str(fiji)
    try:
        return imagej.init(endpoint, mode=mode)
    except Exception as err:  # noqa: BLE001 - pyimagej raises many kinds (no Java, no network for Maven, bad folder)
        raise UserError(f"could not start Fiji from '{fiji}' with pyimagej ({type(err).__name__}: {err}): check "
                        "the Fiji.app folder and that Java is installed") from None


def open_imagej_window(show: bool = True):
    """Show ImageJ 1.x's main window (embedded: closing it does not exit Python) and return it.

    ``show=False`` creates it without showing it (``ImageJ.NO_SHOW``): macros then behave as with the window
    (an error aborts the macro; without any window ImageJ calls ``System.exit`` on some), for unattended runs."""
    from jpype import JClass

    IJ = JClass("ij.IJ")
    if IJ.getInstance() is not None:
        return IJ.getInstance()
    ImageJ = JClass("ij.ImageJ")
    frame = ImageJ(ImageJ.EMBEDDED if show else ImageJ.NO_SHOW)
    from microsam_fiji.imagej.listener import install_menu_item

    install_menu_item()
    return frame


def wait_until_closed(session: Session, poll_s: float = 0.5) -> None:
    """Block while ImageJ's (or Fiji's) main window is open: keeps a ``microsam-fiji fiji`` process alive."""
    import time

    from jpype import JClass

    IJ = JClass("ij.IJ")
    while True:
        if session.ij is not None:
            visible = bool(session.ij.ui().isVisible())
        else:
            frame = IJ.getInstance()
            visible = frame is not None and bool(frame.isShowing())
        if not visible:
            return
        time.sleep(poll_s)


