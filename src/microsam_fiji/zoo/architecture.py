"""The network inside a Model Zoo package: μSAM's image encoder + UNETR instance decoder, image in, maps out.

This file is copied into the package as the ``pytorch_state_dict`` architecture and imported by
bioimageio.core, deepImageJ-side converters and ilastik without microsam_fiji: it may import only torch and
micro-sam (which brings torch_em and segment_anything / mobile_sam).

Input: (batch, 1 or 3 channels, y, x), float, already scaled to 0..255 per image and channel (the package's
preprocessing does that, as ``micro_sam.util._to_image`` does). Output: (batch, 3, y, x): foreground, center
distances, boundary distances, exactly what micro-sam's ``InstanceSegmentationWithDecoder.initialize`` computes.

The size-dependent steps (resize to 1024 on the longest side, pad, crop back, resize to the input size) are
``torch.jit.script_if_tracing`` functions so that a traced TorchScript export works at every input size and
batch size; the encoder and decoder always see 1024 x 1024.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F

ENCODER_SIZE = 1024
# SAM's pixel statistics (segment_anything.modeling.Sam.pixel_mean / pixel_std), on the 0..255 scale
PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def resized_shape(h: int, w: int, size: int) -> Tuple[int, int]:
    """SAM's ``get_preprocess_shape``: longest side ``size``, rounded half up. In integer arithmetic so that
    ``torch.export`` (ONNX) keeps the sizes symbolic instead of fixing them to the example's."""
    if torch.jit.is_scripting():
        longest = max(h, w)
    else:
        longest = torch.sym_max(h, w)
    return (2 * h * size + longest) // (2 * longest), (2 * w * size + longest) // (2 * longest)


@torch.jit.script_if_tracing
def to_encoder_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int) -> torch.Tensor:
    """What micro-sam does before the encoder: grey -> RGB, uint8 cast (``_to_image`` truncates), resize
    the longest side to ``size`` (PIL bilinear on uint8, so the result is rounded), normalise, pad."""
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = torch.floor(torch.clamp(x, 0.0, 255.0))
    h, w = x.shape[2], x.shape[3]
    new_h, new_w = resized_shape(h, w, size)
    # PIL resamples x first, then y, storing uint8 (rounded half up) after each pass
    x = F.interpolate(x, size=[h, new_w], mode="bilinear", align_corners=False, antialias=True)
    x = torch.floor(torch.clamp(x, 0.0, 255.0) + 0.5)
    x = F.interpolate(x, size=[new_h, new_w], mode="bilinear", align_corners=False, antialias=True)
    x = torch.floor(torch.clamp(x, 0.0, 255.0) + 0.5)
    x = (x - mean) / std
    return F.pad(x, [0, size - new_w, 0, size - new_h])


@torch.jit.script_if_tracing
def to_input_size(maps: torch.Tensor, like: torch.Tensor, size: int) -> torch.Tensor:
    """Crop the padded 1024 x 1024 maps to the resized image and bring them to the input's size
    (``UNETR.postprocess_masks``)."""
    h, w = like.shape[2], like.shape[3]
    new_h, new_w = resized_shape(h, w, size)
    maps = maps[:, :, :new_h, :new_w]
    out_size: List[int] = [h, w]
    return F.interpolate(maps, size=out_size, mode="bilinear", align_corners=False)


class PerImageBatchNorm2d(torch.nn.BatchNorm2d):
    """BatchNorm that normalises with each image's own statistics.

    micro-sam (1.8.14) never switches its UNETR decoder to eval mode, so at inference its BatchNorm layers use
    the statistics of the single image being segmented, not the running ones. ``bioimageio.core`` puts models in
    eval mode; this layer keeps micro-sam's numbers there, per image also in a batch. Same state dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


def _per_image_batch_norm(module: torch.nn.Module) -> None:
    for name, child in module.named_children():
        if type(child) is torch.nn.BatchNorm2d:
            replacement = PerImageBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum,
                                              affine=child.affine)
            setattr(module, name, replacement)
        else:
            _per_image_batch_norm(child)


def _attention_bias_modules(encoder: torch.nn.Module) -> List[torch.nn.Module]:
    return [m for m in encoder.modules() if hasattr(m, "attention_biases") and hasattr(m, "attention_bias_idxs")]


class InstanceMaps(torch.nn.Module):
    """``unetr`` is micro-sam's ``get_unetr`` model (SAM image encoder + UNETR decoder); its state dict keys
    are those of the package's weights."""

    def __init__(self, model_type: str = "vit_b", use_conv_transpose: bool = False):
        super().__init__()
        from micro_sam.util import sam_model_registry
        from torch_em.model.unetr import UNETR

        sam = sam_model_registry[model_type[:5]]()
        # the arguments micro_sam.instance_segmentation.get_unetr uses
        self.unetr = UNETR(backbone="sam", encoder=sam.image_encoder, out_channels=3, use_sam_stats=True,
                           final_activation="Sigmoid", use_skip_connection=False, resize_input=True,
                           use_conv_transpose=use_conv_transpose)
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(1, 3, 1, 1), persistent=False)
        for name, child in self.unetr.named_children():
            if name != "encoder":  # SAM's encoder runs in eval mode in micro-sam too
                _per_image_batch_norm(child)
        # MobileSAM's (vit_t) attention caches its biases in ``ab`` when switched to eval mode. micro-sam switches
        # before loading the weights and never again, so it runs with the biases of a fresh model (zeros), not
        # the trained ones. Keep that value, whatever eval()/train() calls a consumer makes.
        for m in _attention_bias_modules(self.unetr.encoder):
            m.register_buffer("micro_sam_ab", m.attention_biases[:, m.attention_bias_idxs].detach().clone(),
                              persistent=False)
        self.train(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in _attention_bias_modules(self.unetr.encoder):
            if not m.training:
                m.ab = m.micro_sam_ab.clone()  # a shared tensor would stop torch.jit.trace
        return self

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = to_encoder_input(image, self.pixel_mean, self.pixel_std, ENCODER_SIZE)
        features = self.unetr._encode_image(x)
        full = (ENCODER_SIZE, ENCODER_SIZE)
        # decode() ends in postprocess_masks; at 1024 -> 1024 it only upsamples to the encoder grid
        maps = self.unetr.decode((features[0], features[1], x), full, full)
        return to_input_size(maps, image, ENCODER_SIZE)
