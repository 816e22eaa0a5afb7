"""The mask decoder's upscaling for point prompts (``decoder``): SAM's ``output_upscaling`` and the
hypernetwork product, restructured.

The first transposed convolution is carried through the transformer's layer norms as products with the
prompt tokens' few value vectors (``Upscaling``, ``first_conv``); the rest runs a few image-token rows at a
time (their intermediate results stay in the cache) and only on the part of the grid that reaches the image
(SAM crops its padding away)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Upscaling:
    """The upscaling's first transposed convolution (kernel 2, stride 2: a matrix product ``keys @ W1`` per
    image token) pushed through the transformer's image-token layer norms, where it costs a product with
    the few prompt-token vectors per layer instead of one with all 256 channels of every image token:

        keys' = LN(keys + P V) = rstd * (keys + P V - mean) * gamma + beta
        keys' @ G = rstd * (keys + P V) @ M + beta @ G,   M = gamma G minus its mean over input channels

    (the centring subtracts ``mean``), recursively down to the image embedding, whose product with the
    first layer's ``M`` is computed once per image (``first``)."""

    weights: list  # per layer l: M_l = centre(gamma_l M_(l+1)), with M_L = W1
    offsets: list  # per layer l: beta_l @ M_(l+1) (+ W1's bias in the last layer), a (1, 1, 4 o1) row
    first: torch.Tensor | None = None  # image embedding keys @ M_0, per image

    @classmethod
    def for_model(cls, md) -> "Upscaling":
        c1 = md.output_upscaling[0]
        g = c1.weight.permute(0, 2, 3, 1).reshape(c1.in_channels, 4 * c1.out_channels)  # columns (i, j, out)
        weights: list[torch.Tensor] = []
        offsets: list[torch.Tensor] = []
        for layer in reversed(md.transformer.layers):
            norm = layer.norm4
            offsets.insert(0, (norm.bias @ g + (c1.bias.repeat(4) if not offsets else 0)).view(1, 1, -1))
            g = norm.weight[:, None] * g
            g = g - g.mean(dim=0, keepdim=True)
            weights.insert(0, g)
        return cls(weights=weights, offsets=offsets)


def first_conv(upscaling: Upscaling, image_part: torch.Tensor, mixes: list) -> torch.Tensor:
    """The upscaling's first product for every prompt: the recursion of ``Upscaling`` unrolled,

        keys_L @ W1 = (prod_l rstd_l) image_part + sum_l (prod_(k>=l) rstd_k) P_l (V_l M_l)
                      + sum_l (prod_(k>l) rstd_k) offset_l

    as one scaled copy of the image's part and one matrix product."""
    b, n = mixes[0][0].shape[:2]  # the image's part is shared by the prompts (batch 1)
    # the factors laid out (B, columns, n): each layer's P_l is written as contiguous rows, not strided columns
    factors = image_part.new_empty((b, sum(1 + probs.shape[2] for probs, _, _ in mixes), n))
    mixed, scale, row = [], None, 0
    for (probs, values_m, rstd), offset in zip(reversed(mixes), reversed(upscaling.offsets)):
        if scale is None:  # offset_l's factor
            factors[:, row].fill_(1.0)
        else:
            factors[:, row].copy_(scale[..., 0])
        mixed.append(offset.expand(values_m.shape[0], -1, -1))
        scale = rstd if scale is None else scale * rstd
        torch.mul(probs.transpose(1, 2), scale.transpose(1, 2), out=factors[:, row + 1:row + 1 + probs.shape[2]])
        mixed.append(values_m)
        row += 1 + probs.shape[2]
    assert scale is not None  # set by the first layer: SAM's decoder has at least one
    return torch.mul(image_part, scale).baddbmm_(factors.transpose(1, 2), torch.cat(mixed, dim=1))


def upscale_masks(md, first_blocks: list, hyper: torch.Tensor, side: int, cols: int, rows_per_pass: int):
    """``hyper @ output_upscaling(...)`` -> B x M x 4side x 4side from the first transposed convolution's
    output, given per block of image-token rows as (first row, B x (rows x ``cols``) x 4 o1) for the region
    that reaches the image (the rest is left at -inf)."""
    up = md.output_upscaling
    b, m = hyper.shape[0], hyper.shape[1]
    c1, ln, c2 = up[0], up[1], up[3]
    o1, o2 = c1.out_channels, c2.out_channels
    w2 = c2.weight.permute(0, 2, 3, 1).reshape(o1, 4 * o2)
    b2 = c2.bias.repeat(4)
    masks = torch.full((b, m, 4 * side, 4 * side), float("-inf"), dtype=hyper.dtype, device=hyper.device)
    for r0, first in first_blocks:
        grid = first.view(b, -1, cols, 4 * o1)
        for s0 in range(0, grid.shape[1], rows_per_pass):
            s1 = min(s0 + rows_per_pass, grid.shape[1])
            x = grid[:, s0:s1].reshape(-1, o1)
            x = F.gelu(F.layer_norm(x, (o1,), ln.weight, ln.bias, ln.eps))
            x = F.gelu(torch.addmm(b2, x, w2)).view(b, -1, o2)
            block = (x @ hyper.transpose(1, 2)).view(b, s1 - s0, cols, 2, 2, 2, 2, m)
            # b, y, x, i, j, k, l, mask -> b, mask, (y, i, k), (x, j, l)
            masks[:, :, 4 * (r0 + s0):4 * (r0 + s1), :4 * cols] = block.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(
                b, m, 4 * (s1 - s0), 4 * cols)
    return masks


def region_part(x: torch.Tensor, side: int, r0: int, r1: int, rows: int, cols: int) -> torch.Tensor:
    """(B, (r1 - r0) side, k) for image-token rows r0..r1 -> those within the top-left ``rows`` x ``cols``."""
    kept = min(r1, rows) - r0
    if kept == r1 - r0 and cols == side:
        return x
    return x.reshape(x.shape[0], r1 - r0, side, -1)[:, :kept, :cols].reshape(x.shape[0], kept * cols, -1)
