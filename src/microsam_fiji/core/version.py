"""This distribution's version: the CLI's ``--version``, the plugin jar's and the worker's handshake."""
from __future__ import annotations


def package_version() -> str:
    """The installed micro-sam-fiji version ("unknown" when run from sources that were never installed).

    Returns:
        The version string, e.g. ``"0.1.0"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("micro-sam-fiji")
    except PackageNotFoundError:
        return "unknown"
