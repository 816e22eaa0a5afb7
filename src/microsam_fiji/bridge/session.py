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


class Unattended:
    """While active, no window can wait for a person: every dialog that opens (ImageJ's "Macro Error", the
    message box of a macro's ``exit("...")``, ``IJ.error``, a ``Dialog.create`` or file chooser asking for input)
    and ImageJ's "Exception" window is closed as its close box would (Cancel), and its title and text are kept
    in ``messages``, one line each. New lines of ImageJ's Log go to ``echo`` (e.g. ``print``) as they appear.

    Used around macros run without a person (``microsam-fiji fiji --macro``); it also covers macros nested with
    ``runMacro()``, whose interpreters ImageJ creates with dialogs for errors."""

    def __init__(self, echo=None, on_dialog=None, poll_s: float = 0.1):
        self.echo = echo
        self.on_dialog = on_dialog  # called with each closed dialog's one-line message
        self.poll_s = poll_s
        self.messages: list[str] = []
        self._seen: set[int] = set()
        self._closing: dict[int, float] = {}
        self._log_length = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "Unattended":
        from jpype import JClass

        System = JClass("java.lang.System")
        self._seen = {int(System.identityHashCode(w)) for w in JClass("java.awt.Window").getWindows()
                      if w.isShowing()}
        self._log_length = len(self._log_text())
        self._thread = threading.Thread(target=self._watch, name="microsam-fiji unattended", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()  # what appeared in the last interval

    def _watch(self) -> None:
        import jpype

        jpype.attachThreadToJVM()
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as err:  # a window closing under us; keep watching
                self.messages.append(f"(watching ImageJ's windows: {type(err).__name__}: {err})")

    @staticmethod
    def _log_text() -> str:
        from jpype import JClass

        text = JClass("ij.IJ").getLog()
        return "" if text is None else str(text)

    def poll(self) -> None:
        """Echo new Log lines, then close and record new dialogs (Log first: it says what led to them)."""
        import time

        from jpype import JClass

        log = self._log_text()
        if len(log) < self._log_length:  # the Log was cleared
            self._log_length = 0
        new, self._log_length = log[self._log_length:], len(log)
        if self.echo is not None and new.strip():
            for line in new.rstrip("\n").split("\n"):
                self.echo(line)
        System = JClass("java.lang.System")
        Dialog, Frame = JClass("java.awt.Dialog"), JClass("java.awt.Frame")
        for window in JClass("java.awt.Window").getWindows():
            key = int(System.identityHashCode(window))
            if not window.isShowing() or (key in self._seen and key not in self._closing):
                continue
            exception = isinstance(window, Frame) and str(window.getTitle()) == "Exception"
            if not (isinstance(window, Dialog) or exception):
                continue
            if key not in self._closing:
                self._seen.add(key)
                self._closing[key] = time.monotonic()
                self.messages.append(_window_message(window, exception))
                _post_close(window)
                if self.on_dialog is not None:
                    self.on_dialog(self.messages[-1])
            elif time.monotonic() - self._closing[key] > 1.0:  # ignored its close box
                window.dispose()


def _post_close(window) -> None:
    from jpype import JClass

    WindowEvent = JClass("java.awt.event.WindowEvent")
    queue = JClass("java.awt.Toolkit").getDefaultToolkit().getSystemEventQueue()
    queue.postEvent(WindowEvent(window, WindowEvent.WINDOW_CLOSING))


def _window_message(window, exception: bool) -> str:
    """``title: text`` of a dialog on one line (an exception window: its first line, the exception itself)."""
    title = str(window.getTitle() or "").strip()
    if exception:
        lines = [line for line in str(window.getTextPanel().getText()).splitlines() if line.strip()]
        text = lines[0] if lines else ""
    else:
        text = " ".join(_texts(window))
    text = " ".join(text.split())
    return f"{title}: {text}" if title and text else title or text or "(a dialog without text)"


def _texts(component) -> list[str]:
    """The visible texts of a dialog: labels (ImageJ's MultiLineLabel too) and text areas, not buttons."""
    from jpype import JClass

    out: list[str] = []
    Label, TextArea = JClass("java.awt.Label"), JClass("java.awt.TextArea")
    JLabel, JTextArea = JClass("javax.swing.JLabel"), JClass("javax.swing.JTextArea")
    MultiLineLabel, Container = JClass("ij.gui.MultiLineLabel"), JClass("java.awt.Container")
    if isinstance(component, (Label, JLabel, TextArea, JTextArea)):
        text = str(component.getText() or "")
        if text.strip():
            out.append(text)
    elif isinstance(component, MultiLineLabel):
        field = MultiLineLabel.class_.getDeclaredField("lines")
        field.setAccessible(True)
        lines = field.get(component)
        out.extend(str(line) for line in (lines or []) if str(line).strip())
    if isinstance(component, Container):
        for child in component.getComponents():
            out.extend(_texts(child))
    return out


def run_macro_unattended(code: str, arg: str = "", echo=None, on_dialog=None) -> str | None:
    """Run macro ``code`` so that it never waits for a person (see :class:`Unattended`) and return its
    ``return`` value; a macro error, or any dialog it opened, raises ``MacroError`` with the first message."""
    from .api import MacroError, run_macro

    error = None
    with Unattended(echo=echo, on_dialog=on_dialog) as watch:
        try:
            result = run_macro(code, arg)
        except MacroError as err:
            error = err
    # a dialog's text (e.g. a macro's exit("...") with ImageJ's window) says more than "Macro canceled"
    if watch.messages:
        raise MacroError(watch.messages[0] + (f" ({len(watch.messages) - 1} more dialogs closed)"
                                              if len(watch.messages) > 1 else ""))
    if error is not None:
        raise error
    return result
