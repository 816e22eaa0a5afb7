"""Attention pieces of the point-prompt mask decoder (``decoder``): few prompt tokens against the many image tokens.

The projections of the 4096 image tokens are folded into the few prompt tokens where that is cheaper
(``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values), and the
softmax over the image tokens is accumulated block by block (``Pooling``) so that each block stays in the cache."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


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
