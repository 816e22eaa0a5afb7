"""Running ImageJ macros from Python: in this thread with errors raised (:func:`run_macro`), or with nobody
watching (:func:`run_macro_unattended`: every dialog closed and its text raised)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.imagej.jvm import jclass as _jclass


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
            except Exception as err:  # noqa: BLE001 - a window closing under us; keep watching
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


class MacroError(UserError):
    """A macro stopped with an error; ``str(err)`` is ImageJ's message."""


def run_macro(code: str, arg: str = "") -> str | None:
    """Run ImageJ macro ``code`` in this thread and return its ``return`` value; an error of this macro raises
    :class:`MacroError` with ImageJ's message instead of opening ImageJ's error dialog.

    Macros it nests with ``runMacro()`` get interpreters of ImageJ's own, which show their errors (and a macro's
    ``exit("...")`` with ImageJ's window open) as dialogs that wait for a person: for runs without one, use
    :func:`microsam_fiji.imagej.macros.run_macro_unattended`, which closes every dialog and raises its text."""
    from jpype import JException

    Interpreter = _jclass("ij.macro.Interpreter")
    interp = Interpreter()
    interp.setIgnoreErrors(True)
    try:
        result = interp.run(code, arg or "")
    except JException as err:  # a Java exception thrown by a macro function, not a macro error
        message = interp.getErrorMessage() or f"{err.getClass().getSimpleName()}: {err.getMessage()}"
        raise MacroError(str(message)) from None
    message = interp.getErrorMessage()
    if message is not None:
        raise MacroError(str(message))
    return None if result is None else str(result)


def run_macro_file(path: str | os.PathLike, arg: str = "") -> str | None:
    """:func:`run_macro` on a ``.ijm`` file (``getArgument()`` returns ``arg``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"macro file '{path}' not found: check the path")
    return run_macro(path.read_text(encoding="utf-8"), arg)
