"""Whether a failed load was a failed download (no network here is the usual cause)."""
from __future__ import annotations

from typing import Any

from microsam_fiji.core.errors import UserError

# the fix, said for every place a model is named: a macro option, the command line, Python
LOCAL_MODEL_FIX = ("pass a local checkpoint or package instead (in a macro: model=[/path/to/model]; on the command "
                   "line: --model PATH; in Python: load_model(path))")


# bioimageio.spec reports a failed id lookup as a ValueError whose text holds the resolver's error
NETWORK_ERROR_TEXTS = ("Name or service not known", "Temporary failure in name resolution", "Network is unreachable",
                       "No route to host", "Connection refused", "Failed to establish a new connection",
                       "(or unavailable) id map")



def is_network_error(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a failed download: micro-sam (pooch, requests) and bioimageio.spec
    (httpx) raise different kinds."""
    import socket
    import urllib.error

    kinds: tuple[type, ...] = (OSError, socket.error, urllib.error.URLError)
    for module, name in (("requests", "exceptions.RequestException"), ("httpx", "TransportError")):
        try:
            import importlib

            found: Any = importlib.import_module(module)
            for part in name.split("."):
                found = getattr(found, part)
            kinds += (found,)
        except (ImportError, AttributeError):  # pooch normally brings requests, bioimageio.spec httpx
            pass
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, kinds) and not isinstance(current, (FileNotFoundError, PermissionError)):
            return True
        if any(text in str(current) for text in NETWORK_ERROR_TEXTS):
            return True
        current = current.__cause__ or current.__context__
    return False


def host_unreachable(url: str) -> bool:
    """Whether a download of ``url`` would fail for want of network: its host does not resolve and no proxy is set
    (behind a proxy only the proxy resolves names). Asked before a download, so that an offline failure is one line,
    not a progress bar started and broken off.

    Args:
        url: An http(s) URL.

    Returns:
        True when the host's name cannot be resolved here and no proxy is configured.
    """
    import socket
    import urllib.parse
    import urllib.request

    host = urllib.parse.urlsplit(url).hostname
    if not host or urllib.request.getproxies():
        return False
    try:
        socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return True
    return False


def no_network(what: str) -> UserError:
    """The one-line "no network" error for a model that had to be downloaded (``what``: which one)."""
    return UserError(f"no network: cannot download {what}; {LOCAL_MODEL_FIX}")
