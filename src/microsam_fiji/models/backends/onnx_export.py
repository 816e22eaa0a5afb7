"""The model's two CPU-heavy passes as ONNX graphs, exported once per set of weights and kept on disk.

The graphs are keyed by a hash of the weights, the pass, the input shape and torch's version, so a fine-tuned
model, a new torch or a changed shape gets new graphs while a cold start on known weights only reads a file.
Both passes run on fixed shapes (SAM pads every image and tile to 1024 x 1024, the embeddings are 64 x 64), so
the graphs need no dynamic axes and ONNX Runtime can plan them once."""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.progress import report
from microsam_fiji.core.user_cache import CACHE_ENV, cache_root

_LOG = logging.getLogger(__name__)

ONNX_OPSET = 18
# bumped when the exported modules change (2: the decoder's per-image norms summed a row at a time), so graphs
# cached by an earlier version are not reused
GRAPH_VERSION = 2


def cache_dir() -> Path:
    """Where exported graphs are kept: the subfolder ``onnx`` of the package's cache folder (``$MICROSAM_FIJI_CACHE``,
    else ``$XDG_CACHE_HOME/microsam-fiji``, default ``~/.cache/microsam-fiji``).

    Returns:
        The folder (not created here)."""
    return cache_root() / "onnx"


class GraphCacheError(UserError):
    """The graph cache folder cannot be written (a default onnx backend falls back to torch on it)."""


def weights_key(state: Mapping[str, Any], name: str, shape: tuple[int, ...]) -> str:
    """A hash of the weights ``state`` (name -> tensor), the pass ``name``, its input ``shape`` and torch's
    version: what names a graph file."""
    import torch

    digest = hashlib.sha256(f"{name}|{tuple(shape)}|torch {torch.__version__}|opset {ONNX_OPSET}|"
                            f"graph {GRAPH_VERSION}".encode())
    for key in sorted(state):
        tensor = state[key]
        digest.update(key.encode())
        if hasattr(tensor, "detach"):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def graph_path(state: Mapping[str, Any], name: str, shape: tuple[int, ...]) -> Path:
    """Where the graph of pass ``name`` for the weights ``state`` on inputs of ``shape`` is kept."""
    return cache_dir() / f"{name}-{weights_key(state, name, tuple(shape))}.onnx"


def ensure_graph(path: Path, build: Callable[[], Any], example: Any) -> Path:
    """``path``, exported now from the module ``build()`` returns unless it is already on disk.

    Args:
        path: from :func:`graph_path`.
        build: makes the torch module in eval mode (its forward takes the one tensor ``example``); called only
            when the graph has to be exported.
        example: an input tensor of the shape every call uses.

    Returns:
        ``path``.

    Raises:
        GraphCacheError: when the cache folder cannot be written (naming ``MICROSAM_FIJI_CACHE``)."""
    import torch

    if path.exists():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".part", dir=path.parent)
        os.close(fd)
    except OSError as err:
        raise GraphCacheError(f"cannot write the ONNX cache folder {path.parent} ({err.strerror}): set {CACHE_ENV} "
                              "to a writable folder, or use --backend torch") from err
    module = build()
    stage = path.name.split("-")[0].replace("_", " ")
    report(f"exporting the {stage} for ONNX Runtime (once per set of weights)")
    _LOG.info("exporting %s (once per set of weights)", path)
    try:
        # stdout is the plugin worker's message channel: the dynamo exporter's progress lines must not reach it
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # the exporters' notes on tracing are about code paths SAM does not take
            # torch.export's exporter: the TorchScript-based one is 5x quicker but its TinyViT graph is off by
            # 1.7e-3 on the test image (4e-6 on noise), this one by 4e-6 (measured on tests/data/img2d.tif)
            torch.onnx.export(module, (example,), tmp, opset_version=ONNX_OPSET, dynamo=True, external_data=False,
                              verbose=False, input_names=["input"], output_names=["output"])
        os.replace(tmp, path)  # atomic: two processes exporting the same weights both end with one whole file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
