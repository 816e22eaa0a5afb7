"""What the point-prompt mask decoder (``decoder``) computes from the image embedding alone, once per image.

The first layer's image-side projections, the positional encoding's projections, the image's share of the
upscaling's first product, and the second layer's image-side projections taken through the first layer norm
(``ThroughFirstNorm``): the same for every prompt on an image, so cached for the image last seen."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

from microsam_fiji.engines.fast.decoder_attention import projected_heads, split_heads
from microsam_fiji.engines.fast.decoder_upscaling import Upscaling


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
