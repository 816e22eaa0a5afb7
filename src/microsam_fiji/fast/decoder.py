"""SAM's mask decoder for point prompts, restructured to do less work per prompt (same maths, float32).

SAM's ``MaskDecoder`` copies the image embedding once per prompt and runs the two-way transformer and the
upscaling on every copy. Here:
* what depends on the image alone (the first layer's image-side projections, the positional encoding's
  projections in later layers, the image's share of the upscaling's first product) is computed once per
  image and cached;
* attention projections of the 4096 image tokens are folded into the few prompt tokens where that is
  cheaper (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values);
* the upscaling's first transposed convolution is carried through the layer norms as products with the
  prompt tokens' few value vectors (``_Upscaling``);
* the last token-to-image attention runs only for the tokens whose outputs are used (IoU + selected masks);
* on a CPU, one pass over the image tokens per layer, a block of token rows at a time, with the softmax of
  the following attention accumulated over the blocks (``_Pooling``): each block's intermediate results stay
  in the cache instead of ~15 passes through memory over 4 MB per prompt (``_decode_chunk``);
* the upscaling runs a few image-token rows at a time (its intermediate results stay in the cache) and only
  on the part of the grid that reaches the image (SAM crops its padding away).
Results equal SAM's up to float32 rounding (~1e-5 on logits); tests compare the final instances."""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F

CHUNK = 1  # prompts per pass on a CPU: keeps the working set near the caches, and feeds the worker threads
BLOCK_ROWS = 16  # image-token rows per block in the transformer's passes on a CPU (see _decode_chunk)
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
    return convs_ok and gelus_ok and len(flags) > 0 and flags[0] is True and all(f is False for f in flags[1:])


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n, c // n).transpose(1, 2)


@dataclass
class _ImageTerms:
    """What the decoder computes from the image embedding alone: the same for every prompt on this image."""

    keys: torch.Tensor  # 1, N, C: image embedding plus the dense "no mask" embedding, token-major
    k_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image keys
    v_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image values
    q_first: torch.Tensor  # 1, h, N, d: first layer, image-to-token queries
    upscaling: "_Upscaling"  # with ``first`` for this image
    pe_projections: dict  # later layers' and the final attention's image-side projection -> pe through it,
    # (1, h, N, d) without bias: the positional encoding's share of the scores then costs a product with
    # d = 16 channels per head instead of adding 256-channel encodings to every prompt's image tokens


_TERMS_CACHE: dict = {}  # one entry: (model, features) weak references -> _ImageTerms


def _fingerprint(features: torch.Tensor) -> tuple:
    """What tells a changed embedding from the cached one: inference tensors have no version counter, so the
    sum of the values as well (~1 ms per batch of prompts)."""
    version = None if features.is_inference() else features._version
    return version, float(features.sum(dtype=torch.float64))


def _image_terms(model, features: torch.Tensor) -> _ImageTerms:
    fingerprint = _fingerprint(features)
    entry = _TERMS_CACHE.get("last")
    if entry is not None:
        model_ref, features_ref, cached_fingerprint, terms = entry
        if model_ref() is model and features_ref() is features and cached_fingerprint == fingerprint:
            return terms
    md = model.mask_decoder
    layer = md.transformer.layers[0]
    _, dense = model.prompt_encoder(points=None, boxes=None, masks=None)
    keys = (features + dense[:1]).flatten(2).permute(0, 2, 1).contiguous()
    pe = model.prompt_encoder.get_dense_pe().flatten(2).permute(0, 2, 1).contiguous()
    keys_pe = keys + pe
    t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
    terms = _ImageTerms(keys=keys, k_first=_heads(t2i.k_proj(keys_pe), t2i.num_heads),
                        v_first=_heads(t2i.v_proj(keys), t2i.num_heads),
                        q_first=_heads(i2t.q_proj(keys_pe), i2t.num_heads), upscaling=_Upscaling.for_model(md),
                        pe_projections={})
    terms.upscaling.first = keys @ terms.upscaling.weights[0]
    later = md.transformer.layers[1:]
    image_sides = [(attn, attn.k_proj) for attn in [layer.cross_attn_token_to_image for layer in later]
                   + [md.transformer.final_attn_token_to_image]]
    image_sides += [(layer.cross_attn_image_to_token, layer.cross_attn_image_to_token.q_proj) for layer in later]
    terms.pe_projections = {proj: _heads(pe @ proj.weight.T, attn.num_heads).contiguous() for attn, proj in image_sides}
    _TERMS_CACHE["last"] = (weakref.ref(model), weakref.ref(features), fingerprint, terms)
    return terms


def _fold_queries(attn, q: torch.Tensor):
    """Few query tokens ``q`` (B, T, C) against many image tokens: the key projection folded into the queries
    (``q . (W k + b) = (W^T q) . k + q . b``), scaled by 1/sqrt(d): (B, hT, C), (B, hT, 1), and the projected
    queries (B, h, T, d) for the positional encoding's share (``_scores``)."""
    h = attn.num_heads
    b, t, c = q.shape
    d = attn.internal_dim // h
    qp = _heads(attn.q_proj(q), h)  # B, h, T, d
    qp = qp / math.sqrt(d)
    qk = (qp @ attn.k_proj.weight.view(h, d, c)).reshape(b, h * t, c)
    qb = (qp * attn.k_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
    return qk, qb, qp


def _scores(qk: torch.Tensor, qb: torch.Tensor, qp: torch.Tensor, keys: torch.Tensor, pe_projected: torch.Tensor):
    """(B, h, T, n): folded queries (``_fold_queries``) against a block of image tokens ``keys`` (B, n, C) plus
    their positional encoding, given through the image-side projection (1, h, n, d) (``pe_projections``)."""
    b, h, t, _ = qp.shape
    scores = torch.baddbmm(qb, qk, keys.transpose(1, 2)).view(b, h, t, -1)
    return scores.add_(qp @ pe_projected.transpose(2, 3))


def _token_output(attn, pooled: torch.Tensor, t: int) -> torch.Tensor:
    """The attention output of ``t`` query tokens from their attention-weighted image tokens ``pooled``
    (B, hT, C): the value projection applied after pooling (the weights of each head sum to one)."""
    h = attn.num_heads
    b, _, c = pooled.shape
    d = attn.internal_dim // h
    wv = attn.v_proj.weight.view(h, d, c).transpose(1, 2)  # h, C, d
    out = pooled.view(b, h, t, c) @ wv + attn.v_proj.bias.view(1, h, 1, d)
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, h * d))


class _Pooling:
    """``softmax(scores) @ values`` over the image tokens, accumulated block by block (the running maximum
    keeps the exponentials in range, as in flash attention): the image tokens are read once, in the cache."""

    def __init__(self):
        self.top = self.total = self.pooled = None

    def add(self, scores: torch.Tensor, values: torch.Tensor) -> None:
        """``scores`` (B, Q, n) for one block of ``values`` (B, n, C)."""
        top = scores.amax(dim=2, keepdim=True)
        weights = scores.sub_(top).exp_()  # scores are not used again
        total, pooled = weights.sum(dim=2, keepdim=True), weights @ values
        if self.top is not None:
            new_top = torch.maximum(self.top, top)
            old, now = torch.exp(self.top - new_top), torch.exp(top - new_top)
            total = self.total * old + total * now
            pooled = self.pooled * old + pooled * now
            top = new_top
        self.top, self.total, self.pooled = top, total, pooled

    def result(self) -> torch.Tensor:
        return self.pooled / self.total


def _token_to_image_cached(attn, q: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=..., v=...)`` for few query tokens ``q`` (B, T, C) against image tokens whose key and value
    projections ``kp``/``vp`` (1, h, N, d) are shared by all prompts."""
    h = attn.num_heads
    b, t, _ = q.shape
    d = attn.internal_dim // h
    qp = _heads(attn.q_proj(q), h)  # B, h, T, d
    probs = torch.softmax((qp @ kp.transpose(2, 3)) / math.sqrt(d), dim=-1)
    out = (probs @ vp).transpose(1, 2).reshape(b, t, h * d)
    return attn.out_proj(out)


@dataclass
class _ImageToToken:
    """``attn(q=image tokens, k=tok_q, v=tok_v)``: each image token's update is a mix of a few vectors,
    ``probs`` (n, hT) @ ``values`` (hT, C); the prompt-token side is computed once, the image side per block."""

    attn: torch.nn.Module
    kp: torch.Tensor  # B, h, T, d, divided by sqrt(d)
    qk: torch.Tensor  # B, hT, C: the image tokens' query projection folded into kp
    qb: torch.Tensor  # B, hT, 1
    values: torch.Tensor  # B, hT, C: the prompt tokens' values through the output projection

    @classmethod
    def for_tokens(cls, attn, tok_q: torch.Tensor, tok_v: torch.Tensor) -> "_ImageToToken":
        h = attn.num_heads
        b, t, c = tok_q.shape
        d = attn.internal_dim // h
        kp = _heads(attn.k_proj(tok_q), h) / math.sqrt(d)  # the scores' scaling, applied to the few tokens
        vp = _heads(attn.v_proj(tok_v), h)
        qk = (kp @ attn.q_proj.weight.view(h, d, c)).reshape(b, h * t, c)
        qb = (kp * attn.q_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
        wo = attn.out_proj.weight.view(c, h, d).permute(1, 2, 0)  # h, d, C
        # the output projection's bias spread over the heads, whose attention weights each sum to one
        values = (vp @ wo + attn.out_proj.bias / h).reshape(b, h * t, c)
        return cls(attn, kp, qk, qb, values)

    def probs(self, keys: torch.Tensor | None = None, pe_projected: torch.Tensor | None = None,
              qp: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, hT) for a block of image tokens ``keys`` (B, n, C) and their positional encoding's query
        projection (1, h, n, d), or of their query projections ``qp`` (1, h, n, d) shared by all prompts."""
        b, h, t, _ = self.kp.shape
        # laid out (B, h, T, n): the softmax over the few tokens then runs along a long, vectorised axis
        if qp is not None:
            scores = self.kp @ qp.transpose(2, 3)
        else:
            scores = _scores(self.qk, self.qb, self.kp, keys, pe_projected)
        return torch.softmax(scores, dim=2).view(b, h * t, -1).transpose(1, 2)


@dataclass
class _Upscaling:
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
    def for_model(cls, md) -> "_Upscaling":
        c1 = md.output_upscaling[0]
        g = c1.weight.permute(0, 2, 3, 1).reshape(c1.in_channels, 4 * c1.out_channels)  # columns (i, j, out)
        weights, offsets = [], []
        for layer in reversed(md.transformer.layers):
            norm = layer.norm4
            offsets.insert(0, (norm.bias @ g + (c1.bias.repeat(4) if not offsets else 0)).view(1, 1, -1))
            g = norm.weight[:, None] * g
            g = g - g.mean(dim=0, keepdim=True)
            weights.insert(0, g)
        return cls(weights=weights, offsets=offsets)


def _first_conv(upscaling: _Upscaling, image_part: torch.Tensor, mixes: list) -> torch.Tensor:
    """The upscaling's first product for every prompt: the recursion of ``_Upscaling`` unrolled,

        keys_L @ W1 = (prod_l rstd_l) image_part + sum_l (prod_(k>=l) rstd_k) P_l (V_l M_l)
                      + sum_l (prod_(k>l) rstd_k) offset_l

    as one scaled copy of the image's part and one matrix product."""
    b, n = mixes[0][0].shape[:2]  # the image's part is shared by the prompts (batch 1)
    factors = image_part.new_empty((b, n, sum(1 + probs.shape[2] for probs, _, _ in mixes)))
    mixed, scale, column = [], None, 0
    for (probs, values_m, rstd), offset in zip(reversed(mixes), reversed(upscaling.offsets)):
        # offset_l's factor, then P_l's columns, written in place (no concatenation of N-row factors)
        factors[:, :, column:column + 1].copy_(scale) if scale is not None else factors[:, :, column].fill_(1.0)
        mixed.append(offset.expand(values_m.shape[0], -1, -1))
        scale = rstd if scale is None else scale * rstd
        torch.mul(probs, scale, out=factors[:, :, column + 1:column + 1 + probs.shape[2]])
        mixed.append(values_m)
        column += 1 + probs.shape[2]
    return torch.mul(image_part, scale).baddbmm_(factors, torch.cat(mixed, dim=1))


def _block_rows(device: torch.device, side: int) -> tuple[int, int]:
    """Image-token rows per block in the transformer's passes and in the upscaling: a few on a CPU, where the
    blocks' intermediate results then stay in the cache (the upscaling's are 16x larger); all on a GPU."""
    return (BLOCK_ROWS, UPSCALING_ROWS) if device.type == "cpu" else (side, side)


def _upscale_masks(md, first_blocks: list, hyper: torch.Tensor, side: int, cols: int, rows_per_pass: int):
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


def _region_part(x: torch.Tensor, side: int, r0: int, r1: int, rows: int, cols: int) -> torch.Tensor:
    """(B, (r1 - r0) side, k) for image-token rows r0..r1 -> those within the top-left ``rows`` x ``cols``."""
    kept = min(r1, rows) - r0
    if kept == r1 - r0 and cols == side:
        return x
    return x.reshape(x.shape[0], r1 - r0, side, -1)[:, :kept, :cols].reshape(x.shape[0], kept * cols, -1)


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


def _decode_chunk(md, tokens, terms: _ImageTerms, multimasking: bool, rows: int, cols: int,
                  block_rows: tuple[int, int]):
    """SAM's two-way transformer, final attention and upscaling for a chunk of prompts' ``tokens``.

    One pass over the image tokens per layer, a block of token rows at a time: the block's image-to-token
    attention and key update, then the next attention's (token-to-image, or the final one's) softmax-weighted
    sum over the updated block. The last pass also computes the upscaling's first product for the block
    (``_first_conv``); the rest of the upscaling waits for the final attention's output (the hypernetwork)."""
    tr = md.transformer
    layers = list(tr.layers)
    side = int(math.isqrt(terms.keys.shape[1]))
    upscaling = terms.upscaling
    transformer_rows, upscaling_rows = block_rows
    spans = [(r0, min(r0 + transformer_rows, side)) for r0 in range(0, side, transformer_rows)]
    mask_ids = list(range(1, md.num_mask_tokens)) if multimasking else [0]
    used = [0] + [1 + i for i in mask_ids]  # IoU token + the mask tokens whose masks are returned

    def part(x, r0, r1):  # image tokens of rows r0..r1
        return x[:, r0 * side:r1 * side]

    # the first layer's token-to-image attention: its image-side projections are cached per image
    queries = _before_image(layers[0], tokens, tokens)
    attn_out = _token_to_image_cached(layers[0].cross_attn_token_to_image, queries + tokens, terms.k_first,
                                      terms.v_first)
    queries = _after_image(layers[0], queries, attn_out)
    keys_blocks = [part(terms.keys, r0, r1) for r0, r1 in spans]
    mixes = [[] for _ in spans]  # per block in the region, per layer: probs, values @ M_l, rstd (_Upscaling)
    first_blocks = []
    for index, layer in enumerate(layers):
        i2t = _ImageToToken.for_tokens(layer.cross_attn_image_to_token, queries + tokens, queries)
        values_m = i2t.values @ upscaling.weights[index]
        last = index == len(layers) - 1
        if last:
            next_attn, next_queries = tr.final_attn_token_to_image, queries[:, used]
            next_q = next_queries + tokens[:, used]
        else:
            next_attn, next_queries = layers[index + 1].cross_attn_token_to_image, _before_image(
                layers[index + 1], queries, tokens)
            next_q = next_queries + tokens
        qk, qb, qp = _fold_queries(next_attn, next_q)
        pe_next, pe_i2t = terms.pe_projections.get(next_attn.k_proj), terms.pe_projections.get(i2t.attn.q_proj)
        pooling, norm = _Pooling(), layer.norm4
        for k, (r0, r1) in enumerate(spans):
            keys = keys_blocks[k]
            tokens_in = slice(r0 * side, r1 * side)
            probs = (i2t.probs(qp=terms.q_first[:, :, tokens_in]) if index == 0 else
                     i2t.probs(keys, pe_i2t[:, :, tokens_in]))
            # the first layer's keys are the cached image embedding; later ones are this pass's own
            update = torch.baddbmm(keys, probs, i2t.values) if index == 0 else keys.baddbmm_(probs, i2t.values)
            keys, _, rstd = torch.native_layer_norm(update, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            keys_blocks[k] = keys
            pooling.add(_scores(qk, qb, qp, keys, pe_next[:, :, tokens_in]).flatten(1, 2), keys)
            if r0 < rows:
                mixes[k].append((_region_part(probs, side, r0, r1, rows, cols), values_m,
                                 _region_part(rstd, side, r0, r1, rows, cols)))
                if last:
                    image_part = _region_part(part(upscaling.first, r0, r1), side, r0, r1, rows, cols)
                    first_blocks.append((r0, _first_conv(upscaling, image_part, mixes[k])))
        attn_out = _token_output(next_attn, pooling.result(), next_q.shape[1])
        if not last:
            queries = _after_image(layers[index + 1], next_queries, attn_out)
    hs = tr.norm_final_attn(next_queries + attn_out)
    hyper = torch.stack([md.output_hypernetworks_mlps[i](hs[:, 1 + k]) for k, i in enumerate(mask_ids)], dim=1)
    masks = _upscale_masks(md, first_blocks, hyper, side, cols, upscaling_rows)
    ious = md.iou_prediction_head(hs[:, 0])[:, mask_ids]
    return masks, ious


@torch.inference_mode()
def decode_points(predictor, points: torch.Tensor, labels: torch.Tensor, multimasking: bool, region=None):
    """Low-resolution mask logits and predicted IoUs for point prompts (model input coordinates), as
    ``predictor.model.mask_decoder`` returns them (check :func:`supported` first). ``region`` (rows, columns)
    of the low-resolution masks: only that top-left part is computed, the rest is -inf."""
    model = predictor.model
    md = model.mask_decoder
    sparse, _ = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    terms = _image_terms(model, predictor.features)
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
        results = [_decode_chunk(md, chunk, *args) for chunk in chunks]
    else:
        results = _decode_in_threads(md, chunks, args, workers)
    return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])


def _decode_in_threads(md, chunks, args, workers):
    """Chunks on ``workers`` threads with one intra-op thread each: the decoder is many small operations,
    and one team of threads per operation waits at every barrier for its slowest member (badly so when
    other processes share the cores)."""
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        def run(chunk):
            torch.set_num_threads(1)  # per worker thread as well: OpenMP's thread count is per thread
            with torch.inference_mode():
                return _decode_chunk(md, chunk, *args)

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, chunks))
    finally:
        torch.set_num_threads(threads)
