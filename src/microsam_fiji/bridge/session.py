"""A bridge session: ImageJ running inside this Python process, the macro command registered, models loaded once.

Start it from Python, then use ImageJ/Fiji as usual; every macro can call ``run("micro-sam APG", "...")``::

    # plain ImageJ 1.x (any ij.jar; Debian: apt-get install imagej)
    from microsam_fiji.bridge import session
    s = session.start()                      # or start(ij="/path/to/ij.jar"), start(gui=True) opens ImageJ's window

    # Fiji, through pyimagej (needs network the first time pyimagej resolves Fiji's jars)
    s = session.start(fiji="/path/to/Fiji.app")   # mode="interactive"; then s.ij.ui().showUI()

or from a shell, which opens the window and returns when it is closed::

    microsam-fiji fiji --fiji /path/to/Fiji.app      # or: python -m microsam_fiji.bridge --fiji ...
    microsam-fiji fiji                               # plain ImageJ from ij.jar

Known limit (ImageJ 1.x): without ImageJ's main window (plain ij.jar, ``gui=False``), a macro error such as
"There are no images open" raised by ImageJ's own ``IJ.getImage()`` makes ImageJ call ``System.exit`` (its
command-line batch behaviour), which ends Python too; ``start(gui=True)``, ``microsam-fiji fiji`` and Fiji
have the window and only abort the macro. The ``micro-sam APG`` command itself never calls ``IJ.getImage()``.

Models are cached by their source string (``model=[...]`` in a macro), so the first call on a model loads it and
later calls, from any macro, reuse it together with its per-image embedding cache."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from ..errors import UserError
from ..models import DEMO_NAME, Model, load_model

_lock = threading.Lock()
_session: "Session | None" = None


class Session:
    """The JVM side (``ij``: the pyimagej gateway when started with Fiji, else None) and the loaded models."""

    def __init__(self, ij=None, default_model: str | os.PathLike | Model | None = None, device: str | None = None):
        self.ij = ij
        self.device = device
        self.models: dict[str, Model] = {}
        self.model_loads = 0
        # one segmentation at a time: SAM predictors hold per-image state
        self.lock = threading.RLock()
        self.default_model = DEMO_NAME
        self.set_default_model(default_model)

    def set_default_model(self, model: str | os.PathLike | Model | None) -> None:
        """Used where a macro gives no ``model=``; a :class:`Model` object is registered under its source."""
        if model is None:
            return
        if isinstance(model, Model):
            self.models.setdefault(self.model_key(model.source), model)
            self.default_model = model.source
        else:
            self.default_model = str(model)

    @staticmethod
    def model_key(source: str | os.PathLike) -> str:
        text = str(source).strip()
        path = Path(text).expanduser()
        return str(path.resolve()) if text and path.exists() else text

    def model(self, source: str | os.PathLike | Model | None = None) -> Model:
        """The model for ``source`` (default: the session default), loaded on first use and kept."""
        if isinstance(source, Model):
            return source
        text = str(source).strip() if source is not None else ""
        key = self.model_key(text or self.default_model)
        with self.lock:
            model = self.models.get(key)
            if model is None:
                model = load_model(key, device=self.device)
                self.model_loads += 1
                self.models[key] = model
            return model


def current() -> Session:
    """The running session, or a new one without starting anything (for :mod:`.api` on an existing JVM)."""
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
    from .macro_command import register

    global _session
    gateway = None
    if fiji is not None:
        gateway = _start_fiji(fiji, mode)
    else:
        from .jvm import start_imagej

        start_imagej(ij, headless=headless)
    session = current()
    if gateway is not None:
        session.ij = gateway
    if device is not None:
        session.device = device
    session.set_default_model(default_model)
    register(session)
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
    except Exception as err:  # pyimagej raises many kinds (no Java, no network for Maven, bad folder)
        raise UserError(f"could not start Fiji from '{fiji}' with pyimagej ({type(err).__name__}: {err}): check "
                        "the Fiji.app folder and that Java is installed") from None


def open_imagej_window():
    """Show ImageJ 1.x's main window (embedded: closing it does not exit Python) and return it."""
    from jpype import JClass

    IJ = JClass("ij.IJ")
    if IJ.getInstance() is not None:
        return IJ.getInstance()
    ImageJ = JClass("ij.ImageJ")
    frame = ImageJ(ImageJ.EMBEDDED)
    from .macro_command import install_menu_item

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
