"""SAM's mask decoder for point prompts, restructured to do less work per prompt (same maths, float32).

SAM's ``MaskDecoder`` copies the image embedding once per prompt and runs the two-way transformer and the
upscaling on every copy. Here:
* what depends on the image alone (the first layer's image-side projections, the positional encoding's
  projections in the second, the image's share of the upscaling's first product) is computed once per
  image and cached (the image terms below);
* the second layer's attentions take their image-side projections through the first layer norm: the
  cached projections of the image embedding plus corrections of rank hT = 56 per prompt
  (``ThroughFirstNorm``), instead of products with all 256 channels of the updated image tokens;
* other attention projections of the 4096 image tokens are folded into the few prompt tokens where that is
  cheaper (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values;
  the attention pieces);
* the upscaling's first transposed convolution is carried through the layer norms as products with the
  prompt tokens' few value vectors (``Upscaling``);
* the last token-to-image attention runs only for the tokens whose outputs are used (IoU + selected masks);
* on a CPU, one pass over the image tokens per layer, a block of token rows at a time, with the softmax of
  the following attention accumulated over the blocks (``Pooling``): each block's
  intermediate results stay in the cache instead of ~15 passes through memory over 4 MB per prompt
  (``decode_chunk``);
* the upscaling runs a few image-token rows at a time (its intermediate results stay in the cache) and only
  on the part of the grid that reaches the image (SAM crops its padding away).
Results equal SAM's up to float32 rounding (~1e-5 on logits); tests compare the final instances.

This module holds the entry point (``supported``, ``decode_points``), how prompts are split into chunks and
blocks on a CPU or a GPU (``CHUNK``, ``_block_rows``, looked up here at call time) and the worker threads."""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

# --- attention --------------------------------------------------------------------------------------------------------
# Attention pieces of the point-prompt mask decoder (``decoder``): few prompt tokens against the many image tokens.
#
# The projections of the 4096 image tokens are folded into the few prompt tokens where that is cheaper
# (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values), and the
# softmax over the image tokens is accumulated block by block (``Pooling``) so that each block stays in the cache.

def split_heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n, c // n).transpose(1, 2)


def scaled_heads(attn, proj, x: torch.Tensor) -> torch.Tensor:
    """``proj(x)`` per head of ``attn`` (B, h, T, d), divided by sqrt(d): the scores' scaling applied to the
    few prompt tokens instead of to the scores over all image tokens."""
    h = attn.num_heads
    return split_heads(proj(x), h) / math.sqrt(attn.internal_dim // h)


def projected_heads(x: torch.Tensor, weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Image tokens ``x`` (1, N, C) through ``weight`` (k x C, no bias), per head (1, h, N, d), cached per image."""
    return split_heads(x @ weight.T, heads).contiguous()


def fold_queries(attn, q: torch.Tensor):
    """Few query tokens ``q`` (B, T, C) against many image tokens: the key projection folded into the queries
    (``q . (W k + b) = (W^T q) . k + q . b``), scaled by 1/sqrt(d): (B, hT, C), (B, hT, 1), and the projected
    queries (B, h, T, d) for the positional encoding's share (``folded_scores``)."""
    h = attn.num_heads
    b, t, c = q.shape
    d = attn.internal_dim // h
    qp = scaled_heads(attn, attn.q_proj, q)
    qk = (qp @ attn.k_proj.weight.view(h, d, c)).reshape(b, h * t, c)
    qb = (qp * attn.k_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
    return qk, qb, qp


def folded_scores(qk: torch.Tensor, qb: torch.Tensor, qp: torch.Tensor, keys: torch.Tensor, pe_projected: torch.Tensor):
    """(B, hT, n): folded queries (``fold_queries``) against a block of image tokens ``keys`` (B, n, C) plus
    their positional encoding, given through the image-side projection (1, h, n, d)."""
    b, h, t, _ = qp.shape
    scores = torch.baddbmm(qb, qk, keys.transpose(1, 2))
    return scores.add_((qp @ pe_projected.transpose(2, 3)).view(b, h * t, -1))


def token_output(attn, pooled: torch.Tensor, t: int) -> torch.Tensor:
    """The attention output of ``t`` query tokens from their attention-weighted image tokens ``pooled``
    (B, hT, C): the value projection applied after pooling (the weights of each head sum to one)."""
    h = attn.num_heads
    b, _, c = pooled.shape
    d = attn.internal_dim // h
    wv = attn.v_proj.weight.view(h, d, c).transpose(1, 2)  # h, C, d
    out = pooled.view(b, h, t, c) @ wv + attn.v_proj.bias.view(1, h, 1, d)
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, h * d))


class Pooling:
    """``softmax(scores) @ values`` over the image tokens, accumulated block by block (the running maximum
    keeps the exponentials in range, as in flash attention): the image tokens are read once, in the cache."""

    def __init__(self):
        self.top = self.total = self.sums = None

    def add(self, scores: torch.Tensor, weighted) -> None:
        """``scores`` (..., n) for one block; ``weighted(weights)``: the block's weighted sums, a tuple of tensors
        each linear in the weights, with the scores' leading dimensions."""
        top = scores.amax(dim=-1, keepdim=True)
        weights = scores.sub_(top).exp_()  # scores are not used again
        total, sums = weights.sum(dim=-1, keepdim=True), weighted(weights)
        if self.top is not None:
            new_top = torch.maximum(self.top, top)
            old, now = torch.exp(self.top - new_top), torch.exp(top - new_top)
            total = self.total * old + total * now
            sums = tuple(a * old + x * now for a, x in zip(self.sums, sums))
            top = new_top
        self.top, self.total, self.sums = top, total, sums

    def result(self) -> tuple:
        return tuple(x / self.total for x in self.sums)


def token_to_image_cached(attn, q: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=..., v=...)`` for few query tokens ``q`` (B, T, C) against image tokens whose key and value
    projections ``kp``/``vp`` (1, h, N, d) are shared by all prompts."""
    b, t, _ = q.shape
    probs = torch.softmax(scaled_heads(attn, attn.q_proj, q) @ kp.transpose(2, 3), dim=-1)
    out = (probs @ vp).transpose(1, 2).reshape(b, t, -1)
    return attn.out_proj(out)


@dataclass
class ImageToToken:
    """``attn(q=image tokens, k=tok_q, v=tok_v)``: each image token's update is a mix of a few vectors,
    ``probs`` (n, hT) @ ``values`` (hT, C); the prompt-token side is computed once, the image side per block."""

    attn: torch.nn.Module
    kp: torch.Tensor  # B, h, T, d, divided by sqrt(d)
    values: torch.Tensor  # B, hT, C: the prompt tokens' values through the output projection

    @classmethod
    def for_tokens(cls, attn, tok_q: torch.Tensor, tok_v: torch.Tensor) -> "ImageToToken":
        h = attn.num_heads
        b, t, c = tok_q.shape
        d = attn.internal_dim // h
        kp = scaled_heads(attn, attn.k_proj, tok_q)
        vp = split_heads(attn.v_proj(tok_v), h)
        wo = attn.out_proj.weight.view(c, h, d).permute(1, 2, 0)  # h, d, C
        # the output projection's bias spread over the heads, whose attention weights each sum to one
        values = (vp @ wo + attn.out_proj.bias / h).reshape(b, h * t, c)
        return cls(attn, kp, values)

    def probs(self, scores: torch.Tensor) -> torch.Tensor:
        """(B, n, hT) from scores (B, hT, n): the softmax over the few tokens runs along a long axis."""
        b, h, t, _ = self.kp.shape
        return torch.softmax(scores.view(b, h, t, -1), dim=2).view(b, h * t, -1).transpose(1, 2)


# --- upscaling --------------------------------------------------------------------------------------------------------
# The mask decoder's upscaling for point prompts (``decoder``): SAM's ``output_upscaling`` and the
# hypernetwork product, restructured.
#
# The first transposed convolution is carried through the transformer's layer norms as products with the
# prompt tokens' few value vectors (``Upscaling``, ``first_conv``); the rest runs a few image-token rows at a
# time (their intermediate results stay in the cache) and only on the part of the grid that reaches the image
# (SAM crops its padding away).

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


# --- terms ------------------------------------------------------------------------------------------------------------
# What the point-prompt mask decoder (``decoder``) computes from the image embedding alone, once per image.
#
# The first layer's image-side projections, the positional encoding's projections, the image's share of the
# upscaling's first product, and the second layer's image-side projections taken through the first layer norm
# (``ThroughFirstNorm``): the same for every prompt on an image, so cached for the image last seen.

@dataclass
class ImageTerms:
    """What the decoder computes from the image embedding alone: the same for every prompt on this image."""

    keys: torch.Tensor  # 1, N, C: image embedding plus the dense "no mask" embedding, token-major
    k_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image keys
    v_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image values
    q_first: torch.Tensor  # 1, h, N, d: first layer, image-to-token queries
    upscaling: Upscaling  # with ``first`` for this image
    second: dict  # the second layer's image-side projections (module -> ThroughFirstNorm)
    pe_final: torch.Tensor  # 1, h, N, d: the positional encoding through the final attention's key projection


_TERMS_CACHE: dict = {}  # one entry: (model, features) weak references -> ImageTerms


def _fingerprint(features: torch.Tensor) -> tuple:
    """What tells a changed embedding from the cached one: inference tensors have no version counter, so the
    sum of the values as well (~1 ms per batch of prompts)."""
    version = None if features.is_inference() else features._version
    return version, float(features.sum(dtype=torch.float64))


def image_terms(model, features: torch.Tensor) -> ImageTerms:
    fingerprint = _fingerprint(features)
    entry = _TERMS_CACHE.get("last")
    if entry is not None:
        model_ref, features_ref, cached_fingerprint, terms = entry
        if model_ref() is model and features_ref() is features and cached_fingerprint == fingerprint:
            return terms
    md = model.mask_decoder
    first, second = md.transformer.layers
    final = md.transformer.final_attn_token_to_image
    _, dense = model.prompt_encoder(points=None, boxes=None, masks=None)
    keys = (features + dense[:1]).flatten(2).permute(0, 2, 1).contiguous()
    pe = model.prompt_encoder.get_dense_pe().flatten(2).permute(0, 2, 1).contiguous()
    keys_pe = keys + pe
    t2i, i2t = first.cross_attn_token_to_image, first.cross_attn_image_to_token
    upscaling = Upscaling.for_model(md)
    upscaling.first = keys @ upscaling.weights[0]
    through = [(second.cross_attn_token_to_image, second.cross_attn_token_to_image.k_proj, True),
               (second.cross_attn_token_to_image, second.cross_attn_token_to_image.v_proj, False),
               (second.cross_attn_image_to_token, second.cross_attn_image_to_token.q_proj, True)]
    terms = ImageTerms(
        keys=keys, k_first=split_heads(t2i.k_proj(keys_pe), t2i.num_heads).contiguous(),
        v_first=split_heads(t2i.v_proj(keys), t2i.num_heads).contiguous(),
        q_first=split_heads(i2t.q_proj(keys_pe), i2t.num_heads).contiguous(),
        upscaling=upscaling,
        second={proj: ThroughFirstNorm.for_projection(proj, first.norm4, keys, pe if with_pe else None,
                                                      attn.num_heads) for attn, proj, with_pe in through},
        pe_final=projected_heads(pe, final.k_proj.weight, final.num_heads))
    _TERMS_CACHE["last"] = (weakref.ref(model), weakref.ref(features), fingerprint, terms)
    return terms


@dataclass
class ThroughFirstNorm:
    """An image-side projection ``A`` (k x C, bias b) of the image tokens after the first layer,
    ``X1 = LN(X0 + P V) = r (X0 + P V - mu) * gamma + beta`` (per token: ``r`` and ``mu`` from the layer norm,
    ``P`` the image-to-token attention weights, ``V`` the prompt tokens' values), written as

        A X1_n + b = r_n (A G X0_n + (A G V^T) P_n - mu_n A gamma) + A beta + b,    G = diag(gamma)

    with ``A G X0`` cached per image: per prompt, products with the d = 16 channels per head of the projected
    image tokens and with the hT = 56 columns of ``P`` replace products with the 256 channels of ``X1``."""

    cached: torch.Tensor  # 1, h, N, d: A G X0
    weight: torch.Tensor  # k, C: A G
    gamma: torch.Tensor  # h, 1, d: A gamma
    offset: torch.Tensor  # h, 1, d: A beta + b
    pe: torch.Tensor | None  # 1, h, N, d: A pe, where the attention adds the positional encoding

    @classmethod
    def for_projection(cls, proj, norm, keys: torch.Tensor, pe: torch.Tensor | None, heads: int):
        weight = proj.weight * norm.weight
        d = weight.shape[0] // heads
        return cls(cached=projected_heads(keys, weight, heads), weight=weight,
                   gamma=(proj.weight @ norm.weight).view(heads, 1, d),
                   offset=(proj.weight @ norm.bias + proj.bias).view(heads, 1, d),
                   pe=None if pe is None else projected_heads(pe, proj.weight, heads))

    def corrections(self, values: torch.Tensor) -> torch.Tensor:
        """``A G V^T`` per head, (B, h, d, hT), for the prompt tokens' values ``V`` (B, hT, C)."""
        b = values.shape[0]
        h, _, d = self.gamma.shape
        return (self.weight @ values.transpose(1, 2)).view(b, h, d, -1)

    def queries(self, q: torch.Tensor, values: torch.Tensor) -> tuple:
        """What the scores of queries ``q`` (B, h, T, d) need per prompt (``scores``), given ``V``."""
        b, h, t, _ = q.shape
        return (q, (q @ self.corrections(values)).reshape(b, h * t, -1),
                (q * self.gamma).sum(-1).reshape(b, h * t, 1), (q * self.offset).sum(-1).reshape(b, h * t, 1))

    def scores(self, queries: tuple, probs: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
               tokens: slice) -> torch.Tensor:
        """``q . (A (X1_n + pe_n) + b)`` (B, hT, n) for ``queries`` (from ``queries``) and a block of image
        tokens (``tokens``) with the first layer's ``probs`` (B, n, hT), ``mean`` and ``rstd`` (B, n, 1)."""
        q, q_corrections, q_gamma, q_offset = queries
        assert self.pe is not None  # set for the first layer, the only one that scores through its norm
        b, h, t, _ = q.shape
        n = probs.shape[1]
        scores = (q @ self.cached[:, :, tokens].transpose(2, 3)).view(b, h * t, n)
        scores.baddbmm_(q_corrections, probs.transpose(1, 2))
        scores.sub_(q_gamma * mean.view(b, 1, n)).mul_(rstd.view(b, 1, n)).add_(q_offset)
        return scores.add_((q @ self.pe[:, :, tokens].transpose(2, 3)).view(b, h * t, n))

    def pooled_parts(self, weights: torch.Tensor, probs: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor,
                     tokens: slice) -> tuple:
        """The block's share of ``sum_n w_n (A X1_n + b)`` (without the constant) for attention weights
        ``weights`` (B, hT, n): three parts, each linear in the weights (see ``values``)."""
        b, ht, n = weights.shape
        h, _, d = self.gamma.shape
        scaled = weights * rstd.view(b, 1, n)
        return ((scaled.view(b, h, ht // h, n) @ self.cached[:, :, tokens]).reshape(b, ht, d), scaled @ probs,
                scaled @ mean.view(b, n, 1))

    def values(self, parts: tuple, corrections: torch.Tensor) -> torch.Tensor:
        """``sum_n p_n (A X1_n + b)`` per head (B, h, T, d) from the pooled parts for weights ``p`` summing to one."""
        projected, probs, mean = parts
        b, h, d, _ = corrections.shape
        t = projected.shape[1] // h
        return (projected.view(b, h, t, d) + probs.view(b, h, t, -1) @ corrections.transpose(2, 3)
                - mean.view(b, h, t, 1) * self.gamma + self.offset)


# --- transformer ------------------------------------------------------------------------------------------------------
# SAM's two-way transformer, final attention and upscaling for a chunk of point prompts (``decoder``),
# as two passes over the image tokens, a block of token rows at a time, on the per-image terms (``decoder_terms``).

def _before_image(layer, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """A two-way layer's self-attention block."""
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + tokens
        queries = queries + layer.self_attn(q=q, k=q, v=queries)
    return layer.norm1(queries)


def _after_image(layer, queries: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
    """A two-way layer's token-to-image residual and MLP block."""
    queries = layer.norm2(queries + attn_out)
    return layer.norm3(queries + layer.mlp(queries))


def decode_chunk(md, tokens, terms: ImageTerms, multimasking: bool, rows: int, cols: int,
                 block_rows: tuple[int, int]):
    """SAM's two-way transformer (two layers), final attention and upscaling for a chunk of prompts' ``tokens``.

    Two passes over the image tokens, a block of token rows at a time. First: the first layer's image-to-token
    attention and key update, and the second layer's token-to-image attention over the updated block (its
    projections taken through the first layer norm, ``ThroughFirstNorm``; the softmax accumulated over the
    blocks, ``Pooling``). Second: the second layer's image-to-token attention and key update, the final
    attention over the updated block, and the upscaling's first product (``first_conv``); the rest of the
    upscaling waits for the final attention's output (the hypernetwork)."""
    tr = md.transformer
    first, second = tr.layers
    b = tokens.shape[0]
    side = int(math.isqrt(terms.keys.shape[1]))
    upscaling = terms.upscaling
    transformer_rows, upscaling_rows = block_rows
    spans = [(r0, min(r0 + transformer_rows, side)) for r0 in range(0, side, transformer_rows)]
    mask_ids = list(range(1, md.num_mask_tokens)) if multimasking else [0]
    used = [0] + [1 + i for i in mask_ids]  # IoU token + the mask tokens whose masks are returned
    norm1, norm2 = first.norm4, second.norm4

    # first layer, token side: its token-to-image attention's image-side projections are cached per image
    queries = _before_image(first, tokens, tokens)
    attn_out = token_to_image_cached(first.cross_attn_token_to_image, queries + tokens, terms.k_first,
                                     terms.v_first)
    queries = _after_image(first, queries, attn_out)
    i2t = ImageToToken.for_tokens(first.cross_attn_image_to_token, queries + tokens, queries)
    # second layer's token-to-image attention: queries (scaled) against the keys through the first norm
    t2i = second.cross_attn_token_to_image
    queries = _before_image(second, queries, tokens)
    q = scaled_heads(t2i, t2i.q_proj, queries + tokens)
    key_map, value_map = terms.second[t2i.k_proj], terms.second[t2i.v_proj]
    key_queries = key_map.queries(q, i2t.values)
    value_corrections = value_map.corrections(i2t.values)
    pooling = Pooling()
    blocks = []  # per block: X1 and the first layer's probs, mean and rstd
    for r0, r1 in spans:
        tokens_in = slice(r0 * side, r1 * side)
        probs = i2t.probs(i2t.kp @ terms.q_first[:, :, tokens_in].transpose(2, 3))
        keys, mean, rstd = torch.native_layer_norm(torch.baddbmm(terms.keys[:, tokens_in], probs, i2t.values),
                                                   norm1.normalized_shape, norm1.weight, norm1.bias, norm1.eps)
        blocks.append((keys, probs, mean, rstd))
        scores = key_map.scores(key_queries, probs, mean, rstd, tokens_in)
        pooling.add(scores, lambda w, p=probs, m=mean, r=rstd, t=tokens_in: value_map.pooled_parts(w, p, m, r, t))
    values = value_map.values(pooling.result(), value_corrections)  # B, h, T, d
    attn_out = t2i.out_proj(values.transpose(1, 2).reshape(b, tokens.shape[1], -1))
    queries = _after_image(second, queries, attn_out)

    # second layer's image-to-token attention (its query projection through the first norm), key update,
    # final attention over the updated keys, the upscaling's first product
    i2t2 = ImageToToken.for_tokens(second.cross_attn_image_to_token, queries + tokens, queries)
    query_map = terms.second[i2t2.attn.q_proj]
    query_queries = query_map.queries(i2t2.kp, i2t.values)
    values_m = [i2t.values @ upscaling.weights[0], i2t2.values @ upscaling.weights[1]]
    final = tr.final_attn_token_to_image
    final_queries = queries[:, used]
    qk, qb, qp = fold_queries(final, final_queries + tokens[:, used])
    pooling, first_blocks = Pooling(), []
    for (r0, r1), (keys, probs, mean, rstd) in zip(spans, blocks):
        tokens_in = slice(r0 * side, r1 * side)
        probs2 = i2t2.probs(query_map.scores(query_queries, probs, mean, rstd, tokens_in))
        keys, _, rstd2 = torch.native_layer_norm(keys.baddbmm_(probs2, i2t2.values), norm2.normalized_shape,
                                                 norm2.weight, norm2.bias, norm2.eps)
        pooling.add(folded_scores(qk, qb, qp, keys, terms.pe_final[:, :, tokens_in]),
                    lambda w, k=keys: (w @ k,))
        if r0 < rows:
            mixes = [(region_part(x, side, r0, r1, rows, cols), v, region_part(r, side, r0, r1, rows, cols))
                     for x, v, r in ((probs, values_m[0], rstd), (probs2, values_m[1], rstd2))]
            assert upscaling.first is not None  # image_terms sets it before any prompt is decoded
            image_part = region_part(upscaling.first[:, tokens_in], side, r0, r1, rows, cols)
            first_blocks.append((r0, first_conv(upscaling, image_part, mixes)))
    attn_out = token_output(final, pooling.result()[0], len(used))
    hs = tr.norm_final_attn(final_queries + attn_out)
    hyper = torch.stack([md.output_hypernetworks_mlps[i](hs[:, 1 + k]) for k, i in enumerate(mask_ids)], dim=1)
    masks = upscale_masks(md, first_blocks, hyper, side, cols, upscaling_rows)
    ious = md.iou_prediction_head(hs[:, 0])[:, mask_ids]
    return masks, ious


# --- entry point ----------------------------------------------------------------------------------------------------

CHUNK = 1  # prompts per pass on a CPU: keeps the working set near the caches, and feeds the worker threads
BLOCK_ROWS = 16  # image-token rows per block in the transformer's passes on a CPU (see decode_chunk)
UPSCALING_ROWS = 8  # and in the upscaling, whose intermediate results are 16x larger


def supported(model) -> bool:
    """Whether ``model.mask_decoder`` has the layout of SAM's (MobileSAM's) MaskDecoder this code assumes."""
    md = getattr(model, "mask_decoder", None)
    tr = getattr(md, "transformer", None)
    layers = getattr(tr, "layers", None)
    up = getattr(md, "output_upscaling", None)
    if md is None or layers is None or up is None or len(up) != 5 or not hasattr(tr, "final_attn_token_to_image"):
        return False
    convs_ok = all(isinstance(up[i], torch.nn.ConvTranspose2d) and tuple(up[i].kernel_size) == (2, 2)
                   and tuple(up[i].stride) == (2, 2) for i in (0, 3))
    gelus_ok = all(isinstance(up[i], torch.nn.GELU) and up[i].approximate == "none" for i in (2, 4))
    flags = [getattr(layer, "skip_first_layer_pe", None) for layer in layers]
    return convs_ok and gelus_ok and flags == [True, False]  # SAM's two-way transformer has depth 2


def _block_rows(device: torch.device, side: int) -> tuple[int, int]:
    """Image-token rows per block in the transformer's passes and in the upscaling: a few on a CPU, where the
    blocks' intermediate results then stay in the cache (the upscaling's are 16x larger); all on a GPU."""
    return (BLOCK_ROWS, UPSCALING_ROWS) if device.type == "cpu" else (side, side)


@torch.inference_mode()
def decode_points(predictor, points: torch.Tensor, labels: torch.Tensor, multimasking: bool, region=None,
                  progress: Callable[[int], None] | None = None):
    """Low-resolution mask logits and predicted IoUs for point prompts (model input coordinates), as
    ``predictor.model.mask_decoder`` returns them (check :func:`supported` first).

    Args:
        predictor: micro-sam's predictor with the image's embeddings set.
        points, labels: the prompts (B, 1, 2) in model input coordinates and their labels (B, 1).
        multimasking: three masks per prompt (and the IoU token) instead of one.
        region: (rows, columns) of the low-resolution masks: only that top-left part is computed, the rest is
            -inf.
        progress: called on the calling thread with the number of prompts done so far, after each chunk (a
            batch on a CPU takes seconds: the user sees it move, and a reporter may raise there to cancel).

    Returns:
        The logits (B, M, 256, 256) and predicted IoUs (B, M)."""
    model = predictor.model
    md = model.mask_decoder
    sparse, _ = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    terms = image_terms(model, predictor.features)
    side = int(math.isqrt(terms.keys.shape[1]))
    rows, cols = (4 * side, 4 * side) if region is None else region
    rows, cols = min(side, -(-int(rows) // 4)), min(side, -(-int(cols) // 4))  # in image tokens
    output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse), dim=1)
    on_cpu = terms.keys.device.type == "cpu"
    step = CHUNK if on_cpu else tokens.shape[0]  # a GPU takes the whole batch at once
    chunks = [tokens[start:start + step] for start in range(0, tokens.shape[0], step)]
    workers = min(torch.get_num_threads(), len(chunks)) if on_cpu else 1
    args = (terms, multimasking, rows, cols, _block_rows(terms.keys.device, side))
    if workers <= 1:
        results = []
        for chunk in chunks:
            results.append(decode_chunk(md, chunk, *args))
            if progress is not None:
                progress(sum(len(c) for c in chunks[:len(results)]))
    else:
        results = _decode_in_threads(md, chunks, args, workers, progress)
    return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])


def _decode_in_threads(md, chunks, args, workers, progress=None):
    """Chunks on ``workers`` threads with one intra-op thread each: the decoder is many small operations,
    and one team of threads per operation waits at every barrier for its slowest member (badly so when
    other processes share the cores). ``progress`` runs on this thread as chunks finish (the reporter lives in
    this thread's context); if it raises (a cancel), the chunks not started are dropped."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def run(chunk):
            torch.set_num_threads(1)  # per worker thread as well: OpenMP's thread count is per thread
            with torch.inference_mode():
                return decode_chunk(md, chunk, *args)

        pool = ThreadPoolExecutor(workers)
        try:
            futures = [pool.submit(run, chunk) for chunk in chunks]
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=None if progress is None else 0.5,
                                         return_when=FIRST_COMPLETED)
                if progress is not None and finished:
                    progress(sum(len(c) for c, f in zip(chunks, futures) if f.done()))
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        torch.set_num_threads(threads)
