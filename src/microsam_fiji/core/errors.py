"""The one exception type users see.

Every message is a single line that says what was wrong and how to fix it; the CLI prints it without a
traceback and the Fiji macro command shows it the way ImageJ's own commands report errors.
"""


class UserError(ValueError):
    """Bad input, a missing file, no network: something the user can fix. ``str(err)`` is the whole message."""


def first_line(text: object, limit: int = 300) -> str:
    """The first non-empty line of ``text``, at most ``limit`` characters ("unknown reason" when there is none)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0][:limit] if lines else "unknown reason"


def one_line(err: BaseException, limit: int = 300) -> str:
    """An error as one line: a :class:`UserError`'s message as is, anything else as ``Kind: first line``.

    Args:
        err: the exception.
        limit: the most characters taken from an unexpected error's text.

    Returns:
        The line."""
    if isinstance(err, UserError):
        return str(err)
    text = first_line(err, limit) if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
