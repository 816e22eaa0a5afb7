"""SAM's mask decoder for point prompts, restructured to do less work per prompt (same maths, float32).

SAM's ``MaskDecoder`` copies the image embedding once per prompt and runs the two-way transformer and the
upscaling on every copy. Here:
* what depends on the image alone (the first layer's image-side projections, the image's share of the
  upscaling's first product) is computed once per image and cached;
* attention projections of the 4096 image tokens are folded into the few prompt tokens where that is
  cheaper (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values);
* the upscaling's first transposed convolution is carried through the layer norms as products with the
  prompt tokens' few value vectors (``_Upscaling``);
* the last token-to-image attention runs only for the tokens whose outputs are used (IoU + selected masks);
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
BLOCK_ROWS = 8  # image-token rows per pass through the upscaling (its 16x larger output stays in the cache)


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
    pe: torch.Tensor  # 1, N, C: positional encoding
    k_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image keys
    v_first: torch.Tensor  # 1, h, N, d: first layer, token-to-image values
    q_first: torch.Tensor  # 1, h, N, d: first layer, image-to-token queries
    upscaling: "_Upscaling"  # with ``first`` for this image


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
    terms = _ImageTerms(keys=keys, pe=pe, k_first=_heads(t2i.k_proj(keys_pe), t2i.num_heads),
                        v_first=_heads(t2i.v_proj(keys), t2i.num_heads),
                        q_first=_heads(i2t.q_proj(keys_pe), i2t.num_heads), upscaling=_Upscaling.for_model(md))
    terms.upscaling.first = keys @ terms.upscaling.weights[0]
    _TERMS_CACHE["last"] = (weakref.ref(model), weakref.ref(features), fingerprint, terms)
    return terms


def _token_to_image(attn, q: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor, kp=None, vp=None):
    """``attn(q=q, k=k_in, v=v_in)`` for few query tokens ``q`` (B, T, C) and the many image tokens of each
    prompt (B, N, C); or, with ``kp``/``vp`` (1, h, N, d), image tokens shared by all prompts, projected once."""
    h = attn.num_heads
    b, t, _ = q.shape
    d = attn.internal_dim // h
    qp = _heads(attn.q_proj(q), h)  # B, h, T, d
    if kp is not None:
        probs = torch.softmax((qp @ kp.transpose(2, 3)) / math.sqrt(d), dim=-1)
        out = probs @ vp
    else:  # fold the image-side projections into the query tokens
        n, c = k_in.shape[1], k_in.shape[2]
        wk = attn.k_proj.weight.view(h, d, c)
        qk = (qp @ wk).reshape(b, h * t, c) / math.sqrt(d)
        qb = (qp * attn.k_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1) / math.sqrt(d)
        scores = torch.baddbmm(qb, qk, k_in.transpose(1, 2))
        probs = torch.softmax(scores, dim=-1)
        pooled = (probs @ v_in).view(b, h, t, c)
        wv = attn.v_proj.weight.view(h, d, c).transpose(1, 2)  # h, C, d
        out = pooled @ wv + attn.v_proj.bias.view(1, h, 1, d)
    out = out.transpose(1, 2).reshape(b, t, h * d)
    return attn.out_proj(out)


def _image_to_token(attn, img: torch.Tensor, tok_q: torch.Tensor, tok_v: torch.Tensor, qp=None):
    """``attn(q=img, k=tok_q, v=tok_v)``: many image tokens (B, N, C) attend to few prompt tokens (B, T, C);
    ``qp`` (1, h, N, d): image queries shared by all prompts, projected once. Returned as two factors,
    ``probs`` (B, N, hT) @ ``values`` (B, hT, C): the update of each image token is a mix of a few vectors."""
    h = attn.num_heads
    b, t, c = tok_q.shape
    d = attn.internal_dim // h
    kp = _heads(attn.k_proj(tok_q), h)  # B, h, T, d
    vp = _heads(attn.v_proj(tok_v), h)
    # scores laid out (B, h, T, N): the softmax over the few tokens then runs along a long, vectorised axis
    if qp is not None:
        scores = kp @ qp.transpose(2, 3)
    else:
        n = img.shape[1]
        wq = attn.q_proj.weight.view(h, d, c)
        qk = (kp @ wq).reshape(b, h * t, c)
        qb = (kp * attn.q_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
        scores = torch.baddbmm(qb, qk, img.transpose(1, 2)).view(b, h, t, n)
    probs = torch.softmax(scores / math.sqrt(d), dim=2).view(b, h * t, -1)
    wo = attn.out_proj.weight.view(c, h, d).permute(1, 2, 0)  # h, d, C
    # output projection applied to each prompt token's values; its bias spread over the heads, whose
    # attention weights each sum to one
    values = (vp @ wo + attn.out_proj.bias / h).reshape(b, h * t, c)
    return probs.transpose(1, 2), values


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
    scale = torch.ones_like(mixes[-1][2])
    factors, mixed = [], []
    for (probs, values_m, rstd), offset in zip(reversed(mixes), reversed(upscaling.offsets)):
        factors.append(scale)  # multiplies offset_l
        mixed.append(offset.expand(values_m.shape[0], -1, -1))
        scale = scale * rstd
        factors.append(probs * scale)
        mixed.append(values_m)
    return torch.mul(image_part, scale).baddbmm_(torch.cat(factors, dim=2), torch.cat(mixed, dim=1))


def _upscaling_blocks(device: torch.device, prompts: int, rows: int) -> tuple[int, int]:
    """(prompts, image-token rows) per pass through the upscaling: a GPU takes it all at once."""
    return (1, BLOCK_ROWS) if device.type == "cpu" else (prompts, rows)


def _upscale_masks(md, first: torch.Tensor, hyper: torch.Tensor, side: int, rows: int, cols: int) -> torch.Tensor:
    """``hyper @ output_upscaling(...)`` -> B x M x 4side x 4side from the first transposed convolution's
    output ``first`` (B, rows x cols, 4 o1), for the first ``rows`` x ``cols`` image tokens (the rest is left
    at -inf); a few token rows at a time so that the 16-fold larger intermediate results stay in the cache."""
    up = md.output_upscaling
    b = first.shape[0]
    c1, ln, c2 = up[0], up[1], up[3]
    o1, o2 = c1.out_channels, c2.out_channels
    w2 = c2.weight.permute(0, 2, 3, 1).reshape(o1, 4 * o2)
    b2 = c2.bias.repeat(4)
    m = hyper.shape[1]
    masks = torch.full((b, m, 4 * side, 4 * side), float("-inf"), dtype=first.dtype, device=first.device)
    grid = first.view(b, rows, cols, 4 * o1)
    group, block_rows = _upscaling_blocks(first.device, b, rows)
    for k0 in range(0, b, group):
        k1 = min(k0 + group, b)
        for r0 in range(0, rows, block_rows):
            r1 = min(r0 + block_rows, rows)
            x = grid[k0:k1, r0:r1].reshape(-1, o1)
            x = F.gelu(F.layer_norm(x, (o1,), ln.weight, ln.bias, ln.eps))
            x = F.gelu(torch.addmm(b2, x, w2)).view(k1 - k0, -1, o2)
            block = (x @ hyper[k0:k1].transpose(1, 2)).view(k1 - k0, r1 - r0, cols, 2, 2, 2, 2, m)
            # b, y, x, i, j, k, l, mask -> b, mask, (y, i, k), (x, j, l)
            masks[k0:k1, :, 4 * r0:4 * r1, :4 * cols] = block.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(
                k1 - k0, m, 4 * (r1 - r0), 4 * cols)
    return masks


def _in_region(x: torch.Tensor, side: int, rows: int, cols: int) -> torch.Tensor:
    """(B, side*side, k) image-token rows -> those of the top-left ``rows`` x ``cols`` tokens."""
    if rows == side and cols == side:
        return x
    return x.reshape(x.shape[0], side, side, -1)[:, :rows, :cols].reshape(x.shape[0], rows * cols, -1)


def _decode_chunk(md, tokens, terms: _ImageTerms, multimasking: bool, rows: int, cols: int):
    tr = md.transformer
    side = int(math.isqrt(terms.keys.shape[1]))
    pe, upscaling = terms.pe, terms.upscaling
    queries, keys = tokens, terms.keys
    mixes = []  # per layer: the region's attention weights, the values @ M_l, rstd (see _Upscaling)
    for layer, weight in zip(tr.layers, upscaling.weights):
        first = layer.skip_first_layer_pe
        if first:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        keys_pe = None if first else keys + pe
        attn_out = (_token_to_image(layer.cross_attn_token_to_image, queries + tokens, None, None,
                                    kp=terms.k_first, vp=terms.v_first) if first else
                    _token_to_image(layer.cross_attn_token_to_image, queries + tokens, keys_pe, keys))
        queries = layer.norm2(queries + attn_out)
        queries = layer.norm3(queries + layer.mlp(queries))
        probs, values = _image_to_token(layer.cross_attn_image_to_token, keys_pe, queries + tokens, queries,
                                        qp=terms.q_first if first else None)
        norm = layer.norm4
        keys, _, rstd = torch.native_layer_norm(torch.baddbmm(keys, probs, values), norm.normalized_shape,
                                                norm.weight, norm.bias, norm.eps)
        mixes.append((_in_region(probs, side, rows, cols), values @ weight, _in_region(rstd, side, rows, cols)))
    first_conv = _first_conv(upscaling, _in_region(upscaling.first, side, rows, cols), mixes)
    mask_ids = list(range(1, md.num_mask_tokens)) if multimasking else [0]
    used = [0] + [1 + i for i in mask_ids]  # IoU token + the mask tokens whose masks are returned
    q_used = queries[:, used]
    attn_out = _token_to_image(tr.final_attn_token_to_image, q_used + tokens[:, used], keys + pe, keys)
    hs = tr.norm_final_attn(q_used + attn_out)
    hyper = torch.stack([md.output_hypernetworks_mlps[i](hs[:, 1 + k]) for k, i in enumerate(mask_ids)], dim=1)
    masks = _upscale_masks(md, first_conv, hyper, side, rows, cols)
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
    args = (terms, multimasking, rows, cols)
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
