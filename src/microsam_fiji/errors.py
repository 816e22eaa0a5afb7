"""The one exception type users see.

Every message is a single line that says what was wrong and how to fix it; the CLI prints it without a
traceback and the Fiji macro command shows it the way ImageJ's own commands report errors.
"""


class UserError(ValueError):
    """Bad input, a missing file, no network: something the user can fix. ``str(err)`` is the whole message."""
