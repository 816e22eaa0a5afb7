"""``python -m microsam_fiji.worker.worker [--model M] [--device D]``: the ImageJ plugin's warm Python worker.

It is Appose's own Python worker (``appose.python_worker``: JSON lines on stdin/stdout, one thread per task,
``task.update`` / ``task.cancel_requested`` / ``task.fail``), started with two additions:

* stdout carries protocol lines only. The real stdout is kept for Appose's responses and file descriptor 1 is
  pointed at stderr, so anything a library prints (Python ``print``, C code, child processes) lands in the log
  instead of corrupting the protocol; Python-level writes go through :class:`ProtocolOut`, which passes a line
  on only if it is an Appose response.
* the default model and device recorded by ``microsam-fiji install-fiji`` are set before the first task.

The worker ends when its stdin closes (ImageJ exited or stopped it)."""
from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import threading


class ProtocolOut(io.TextIOBase):
    """``sys.stdout`` of the worker: complete lines that are Appose responses go to ``protocol``, all other
    text to ``other`` (stderr). Lines are collected per thread, since tasks run in threads of their own."""

    def __init__(self, protocol, other):
        self._protocol = protocol
        self._other = other
        self._lock = threading.Lock()
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        buffered = getattr(self._local, "buffer", "") + text
        *lines, rest = buffered.split("\n")
        self._local.buffer = rest
        for line in lines:
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        target = self._protocol if is_response(line) else self._other
        with self._lock:
            target.write(line + "\n")
            target.flush()

    def flush(self) -> None:
        with self._lock:
            self._protocol.flush()
            self._other.flush()


def is_response(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and "responseType" in message and "task" in message


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m microsam_fiji.worker.worker", description=__doc__)
    parser.add_argument("--model", default=None, help="default model (a macro's model=[...] overrides it)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    args = parser.parse_args(argv)

    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = ProtocolOut(protocol, sys.stderr)
    # the log (stderr) is read after the fact: each line says when
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    import numpy  # noqa: F401 - Appose's advice: import numpy on the main thread before tasks run

    from microsam_fiji.worker import tasks

    tasks.configure(default_model=args.model, device=args.device)
    import appose.python_worker as appose_worker

    appose_worker.main()


if __name__ == "__main__":
    main()
