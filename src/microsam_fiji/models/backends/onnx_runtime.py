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
        except BaseException as err:  # noqa: BLE001 - handed to the calling thread, which raises it there
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


class _ImageStatistics(torch.nn.Module):
    """A normalisation by each image's own per-channel mean and variance, then scaled and shifted: what a
    BatchNorm2d in training mode on a batch of one computes (micro-sam runs the instance decoder in training mode:
    ``get_decoder`` never calls ``eval()``, so exported as they are, its BatchNorms would use the running
    statistics and give other maps) and what an InstanceNorm2d without running statistics computes.

    The sums run a row at a time, then over the rows: ONNX Runtime's float32 reductions over a whole 1024 x 1024
    plane (its InstanceNormalization, or one ReduceMean) drift by ~3e-4 of the values (measured on the decoder's
    last InstanceNorm: max |diff| 2.4e-3), and through the decoder's maps (max |diff| 8e-5) that split an object
    on a 1024 x 1024 image; PyTorch accumulates in double on a CPU. Summed this way the graph's maps are within
    3e-7 of eager PyTorch's (6 % more decoder time); in double within 2.4e-7 but 2.8x slower."""

    def __init__(self, norm):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x):
        mean = x.mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)
        y = centred * torch.rsqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


def _per_image_norm(module) -> bool:
    """Whether ``module`` normalises by the image's own statistics as micro-sam runs it (see _ImageStatistics)."""
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return module.training and module.weight is not None and module.weight.dim() == 1
    return isinstance(module, torch.nn.InstanceNorm2d) and (module.training or not module.track_running_stats)


class _DecoderCore(torch.nn.Module):
    """The decoder's network as micro-sam runs it, without its final resize (that depends on each image's shape:
    it stays in torch)."""

    def __init__(self, decoder):
        super().__init__()
        self.decoder = copy.deepcopy(decoder)
        for name, module in list(self.decoder.named_modules()):
            if name and _per_image_norm(module):
                parent_name, _, child = name.rpartition(".")
                setattr(self.decoder.get_submodule(parent_name) if parent_name else self.decoder, child,
                        _ImageStatistics(module))
        self.decoder.eval()  # what is left (ReLU, convolutions, resizes) is alike in both modes

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
