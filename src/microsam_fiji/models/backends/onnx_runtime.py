"""The ``onnx`` backend: SAM's image encoder and the UNETR instance decoder run by ONNX Runtime.

Each pass becomes a torch module with the original's call signature, so micro-sam's own code (the predictor's
``set_image``, the generators' ``initialize``) runs unchanged on top of it. ONNX Runtime cannot call back into
Python while it runs a graph, so the run happens on a helper thread while the calling thread keeps reporting
progress (a fraction of the previous run's duration) and stops the run through ``RunOptions.terminate`` when the
reporter cancels (Esc in Fiji)."""
from __future__ import annotations

import copy
import threading
import time
from typing import Any

import numpy as np
import torch

from microsam_fiji.core.progress import Cancelled, report, reporter_active

ENCODER_INPUT = (1, 3, 1024, 1024)  # SAM pads every image and tile to this
EMBEDDINGS = (1, 256, 64, 64)  # what every SAM image encoder (vit_t to vit_h) gives for it
REPORT_EVERY_S = 0.2


def _session(path, device: str):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # ORT's notes on unused initializers and the like are not the user's
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # one thread per core: ORT's default; a batch worker that limits torch's threads limits ours the same way
    options.intra_op_num_threads = _threads()
    # ORT's CPU arena keeps the peak of every run's activations: measured 4.5 GB per loaded vit_t model after two
    # APG calls (8 GB with two models) against 1.4 GB without it, at the same speed (the passes' tensors are large,
    # so malloc's own reuse serves them as well)
    options.enable_cpu_mem_arena = False
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = int(device.split(":")[1]) if ":" in device else 0
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))  # type: ignore[arg-type]
    return ort.InferenceSession(str(path), options, providers=providers)


def _threads() -> int:
    return max(1, int(torch.get_num_threads()))


class OnnxPass:
    """One graph, run with progress reports and cancellation from the calling thread."""

    def __init__(self, path, device: str, stage: str):
        self.path, self.device = path, device
        self.session = _session(path, device)
        self.input_name = self.session.get_inputs()[0].name
        self.stage = stage
        self.last_seconds: float | None = None  # what the progress estimate is based on

    # an ORT session cannot be pickled or deep-copied (copy.deepcopy(predictor.model), a Dask worker's model): the
    # copy opens its own session on the same graph file
    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "session"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.session = _session(self.path, self.device)

    def __call__(self, array: np.ndarray) -> np.ndarray:
        feed = {self.input_name: np.ascontiguousarray(array, dtype=np.float32)}
        if not reporter_active():
            return self._timed(feed, None)
        import onnxruntime as ort

        options = ort.RunOptions()
        result: dict[str, Any] = {}
        worker = threading.Thread(target=lambda: result.update(out=self._guarded(feed, options)), daemon=True)
        start = time.perf_counter()
        worker.start()
        try:
            while worker.is_alive():
                self._report(time.perf_counter() - start)
                worker.join(REPORT_EVERY_S)
        except Cancelled:
            options.terminate = True  # ORT checks the flag between nodes: the run ends within one node's time
            worker.join()
            raise
        out = result["out"]
        if isinstance(out, BaseException):
            raise out
        return out

    def _report(self, elapsed: float) -> None:
        if self.last_seconds:
            report(self.stage, min(99, int(100 * elapsed / self.last_seconds)), 100)
        else:
            report(self.stage)

    def _guarded(self, feed, options):
        try:
            return self._timed(feed, options)
        except BaseException as err:  # handed to the calling thread, which raises it there
            return err

    def _timed(self, feed, options) -> np.ndarray:
        start = time.perf_counter()
        out = self.session.run(None, feed, options)[0]
        self.last_seconds = time.perf_counter() - start
        return out


def onnx_modules(model: Any) -> tuple[Any, Any]:
    """ONNX Runtime replacements for the model's image encoder and its instance decoder (micro-sam's
    ``DecoderAdapter``), exporting their graphs on first use (:mod:`.onnx_export`); the torch decoder is built
    only for that export.

    Args:
        model: a :class:`~microsam_fiji.models.model.Model` with its torch image encoder in the predictor.

    Returns:
        (encoder, decoder) modules with the originals' call signatures and attributes."""
    from microsam_fiji.models.backends.onnx_export import ensure_graph, graph_path

    encoder = model.predictor.model.image_encoder
    encoder_graph = ensure_graph(graph_path(encoder.state_dict(), "image_encoder", ENCODER_INPUT),
                                 lambda: encoder, torch.zeros(ENCODER_INPUT))
    state = model.decoder_state if model.decoder_state is not None else model.torch_decoder().state_dict()
    decoder_graph = ensure_graph(graph_path(state, "instance_decoder", EMBEDDINGS),
                                 lambda: _DecoderCore(model.torch_decoder()), torch.zeros(EMBEDDINGS))
    return (OnnxImageEncoder(encoder, OnnxPass(encoder_graph, model.device, "encoding the image")),
            OnnxInstanceDecoder(int(encoder.img_size), OnnxPass(decoder_graph, model.device, "instance decoder")))


class _BatchStatistics(torch.nn.Module):
    """A BatchNorm2d in training mode on a batch of one, written as what it computes: each channel normalised by
    this image's own mean and variance, then scaled and shifted. micro-sam runs the instance decoder in training
    mode (``get_decoder`` never calls ``eval()``), so its BatchNorms use per-image statistics; exported as they
    are, the graph would use the running statistics instead and give other maps."""

    def __init__(self, norm):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x):
        return torch.nn.functional.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class _DecoderCore(torch.nn.Module):
    """The decoder's network as micro-sam runs it, without its final resize (that depends on each image's shape:
    it stays in torch)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = copy.deepcopy(decoder)
        for name, module in list(self.decoder.named_modules()):
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.training:
                parent_name, _, child = name.rpartition(".")
                setattr(self.decoder.get_submodule(parent_name) if parent_name else self.decoder, child,
                        _BatchStatistics(module))
        self.decoder.eval()  # what is left (InstanceNorm without running statistics, ReLU, convolutions) is alike

    def forward(self, embeddings):
        return self.decoder._forward_impl(embeddings)


class OnnxImageEncoder(torch.nn.Module):
    """SAM's image encoder through ONNX Runtime: ``forward(images) -> embeddings`` as the torch module's."""

    def __init__(self, original, graph: OnnxPass):
        super().__init__()
        self.img_size = original.img_size  # read by the predictor's transforms and our engines
        self.original = [original]  # a list: not registered as a submodule (its weights are in the graph)
        self.graph = graph

    def forward(self, images):
        out = self.graph(images.detach().cpu().numpy())
        return torch.from_numpy(out).to(images.device)


class OnnxInstanceDecoder(torch.nn.Module):
    """micro-sam's ``DecoderAdapter`` through ONNX Runtime; its per-image resize (``postprocess_masks``) in torch."""

    def __init__(self, img_size: int, graph: OnnxPass):
        super().__init__()
        self.img_size = img_size
        self.graph = graph

    def forward(self, embeddings, input_shape, original_shape):
        return self.postprocess_masks(self._forward_impl(embeddings), input_shape, original_shape)

    # micro-sam's tiled generators call these two directly (a batch of tiles at a time)
    def _forward_impl(self, embeddings):
        batch = embeddings.detach().cpu().numpy()
        out = np.concatenate([self.graph(one[None]) for one in batch])  # the graph is planned for one image
        return torch.from_numpy(out).to(embeddings.device)

    def postprocess_masks(self, masks, input_size, original_size):
        """torch_em's ``UNETR.postprocess_masks`` for 2D maps (the decoder's output at SAM's input size, the
        padding cut off, resized to the image): written out so that the torch_em model need not be built;
        ``tests/test_backends.py`` checks it against torch_em's."""
        interpolate = torch.nn.functional.interpolate
        masks = interpolate(masks, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        masks = masks[..., : input_size[0], : input_size[1]]
        return interpolate(masks, tuple(original_size), mode="bilinear", align_corners=False)
