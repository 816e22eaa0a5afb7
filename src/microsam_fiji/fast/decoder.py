"""SAM's mask decoder for point prompts, restructured to do less work per prompt (same maths, float32).

SAM's ``MaskDecoder`` copies the image embedding once per prompt and runs the two-way transformer and the
upscaling on every copy. Here:
* the first layer's image-side projections are computed once (the image tokens are the same for all prompts);
* attention projections of the 4096 image tokens are folded into the few prompt tokens where that is
  cheaper (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values);
* the last token-to-image attention runs only for the tokens whose outputs are used (IoU + selected masks);
* the transposed convolutions (kernel 2, stride 2: no overlap) are plain matrix products on the token-major
  layout, without the NCHW transposes.
Results equal SAM's up to float32 rounding (~1e-5 on logits); tests compare the final instances."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CHUNK = 4  # prompts per pass on a CPU: keeps the working set near the caches, and feeds the worker threads


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


def _token_to_image(attn, q: torch.Tensor, k_in: torch.Tensor, v_in: torch.Tensor) -> torch.Tensor:
    """``attn(q=q, k=k_in, v=v_in)`` for few query tokens ``q`` (B, T, C) and many image tokens (Bk, N, C)."""
    h = attn.num_heads
    b, t, _ = q.shape
    n, c = k_in.shape[1], k_in.shape[2]
    d = attn.internal_dim // h
    qp = _heads(attn.q_proj(q), h)  # B, h, T, d
    if k_in.shape[0] == 1:  # image tokens shared by all prompts: project them once
        kp = _heads(attn.k_proj(k_in), h)
        vp = _heads(attn.v_proj(v_in), h)
        scores = qp @ kp.transpose(2, 3)
        probs = torch.softmax(scores / math.sqrt(d), dim=-1)
        out = probs @ vp
    else:  # fold the image-side projections into the query tokens
        wk = attn.k_proj.weight.view(h, d, c)
        qk = (qp @ wk).reshape(b, h * t, c)
        qb = (qp * attn.k_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
        scores = torch.baddbmm(qb, qk, k_in.transpose(1, 2)).view(b, h, t, n)
        probs = torch.softmax(scores / math.sqrt(d), dim=-1)
        pooled = (probs.view(b, h * t, n) @ v_in).view(b, h, t, c)
        wv = attn.v_proj.weight.view(h, d, c).transpose(1, 2)  # h, C, d
        out = pooled @ wv + attn.v_proj.bias.view(1, h, 1, d)
    out = out.transpose(1, 2).reshape(b, t, h * d)
    return attn.out_proj(out)


def _image_to_token(attn, img: torch.Tensor, tok_q: torch.Tensor, tok_v: torch.Tensor) -> torch.Tensor:
    """``attn(q=img, k=tok_q, v=tok_v)``: many image tokens (Bi, N, C) attend to few prompt tokens (B, T, C)."""
    h = attn.num_heads
    b, t, c = tok_q.shape
    n = img.shape[1]
    d = attn.internal_dim // h
    kp = _heads(attn.k_proj(tok_q), h)  # B, h, T, d
    vp = _heads(attn.v_proj(tok_v), h)
    # scores laid out (B, h, T, N): the softmax over the few tokens then runs along a long, vectorised axis
    if img.shape[0] == 1:
        qp = _heads(attn.q_proj(img), h)  # 1, h, N, d
        scores = kp @ qp.transpose(2, 3)
    else:
        wq = attn.q_proj.weight.view(h, d, c)
        qk = (kp @ wq).reshape(b, h * t, c)
        qb = (kp * attn.q_proj.bias.view(1, h, 1, d)).sum(-1).reshape(b, h * t, 1)
        scores = torch.baddbmm(qb, qk, img.transpose(1, 2)).view(b, h, t, n)
    probs = torch.softmax(scores / math.sqrt(d), dim=2).view(b, h * t, n)
    wo = attn.out_proj.weight.view(c, h, d).permute(1, 2, 0)  # h, d, C
    # output projection applied to each prompt token's values; its bias spread over the heads, whose
    # attention weights each sum to one
    values = (vp @ wo + attn.out_proj.bias / h).reshape(b, h * t, c)
    return probs.transpose(1, 2) @ values


def _upscale_masks(md, keys: torch.Tensor, hyper: torch.Tensor, side: int) -> torch.Tensor:
    """``(hyper @ output_upscaling(keys as B x C x side x side))`` -> B x M x 4side x 4side."""
    up = md.output_upscaling
    b, n, c = keys.shape
    c1, ln, c2 = up[0], up[1], up[3]
    o1, o2 = c1.out_channels, c2.out_channels
    w1 = c1.weight.permute(0, 2, 3, 1).reshape(c, 4 * o1)  # columns (i, j, out channel)
    w2 = c2.weight.permute(0, 2, 3, 1).reshape(o1, 4 * o2)
    x = torch.addmm(c1.bias.repeat(4), keys.reshape(b * n, c), w1).view(b * n * 4, o1)
    x = F.gelu(F.layer_norm(x, (o1,), ln.weight, ln.bias, ln.eps))
    x = F.gelu(torch.addmm(c2.bias.repeat(4), x, w2)).view(b, n * 16, o2)
    m = hyper.shape[1]
    masks = (x @ hyper.transpose(1, 2)).view(b, side, side, 2, 2, 2, 2, m)  # b, y, x, i, j, k, l, mask
    return masks.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(b, m, 4 * side, 4 * side)


def _decode_chunk(md, tokens, keys0, pe, multimasking: bool):
    tr = md.transformer
    side = int(math.isqrt(keys0.shape[1]))
    queries, keys = tokens, keys0
    for layer in tr.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        keys_pe = keys + pe
        queries = layer.norm2(queries + _token_to_image(layer.cross_attn_token_to_image, queries + tokens,
                                                        keys_pe, keys))
        queries = layer.norm3(queries + layer.mlp(queries))
        keys = layer.norm4(keys + _image_to_token(layer.cross_attn_image_to_token, keys_pe,
                                                  queries + tokens, queries))
    mask_ids = list(range(1, md.num_mask_tokens)) if multimasking else [0]
    used = [0] + [1 + i for i in mask_ids]  # IoU token + the mask tokens whose masks are returned
    q_used = queries[:, used]
    attn_out = _token_to_image(tr.final_attn_token_to_image, q_used + tokens[:, used], keys + pe, keys)
    hs = tr.norm_final_attn(q_used + attn_out)
    hyper = torch.stack([md.output_hypernetworks_mlps[i](hs[:, 1 + k]) for k, i in enumerate(mask_ids)], dim=1)
    masks = _upscale_masks(md, keys, hyper, side)
    ious = md.iou_prediction_head(hs[:, 0])[:, mask_ids]
    return masks, ious


@torch.inference_mode()
def decode_points(predictor, points: torch.Tensor, labels: torch.Tensor, multimasking: bool):
    """Low-resolution mask logits and predicted IoUs for point prompts (model input coordinates), as
    ``predictor.model.mask_decoder`` returns them (check :func:`supported` first)."""
    model = predictor.model
    md = model.mask_decoder
    sparse, dense = model.prompt_encoder(points=(points, labels), boxes=None, masks=None)
    image = predictor.features
    pe = model.prompt_encoder.get_dense_pe()
    src = image + dense[:1]  # the dense embedding without a mask prompt is the same for every prompt
    keys0 = src.flatten(2).permute(0, 2, 1)
    pe = pe.flatten(2).permute(0, 2, 1)
    output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(sparse.shape[0], -1, -1), sparse), dim=1)
    on_cpu = image.device.type == "cpu"
    step = CHUNK if on_cpu else tokens.shape[0]  # a GPU takes the whole batch at once
    chunks = [tokens[start:start + step] for start in range(0, tokens.shape[0], step)]
    workers = min(torch.get_num_threads(), len(chunks)) if on_cpu else 1
    if workers <= 1:
        results = [_decode_chunk(md, chunk, keys0, pe, multimasking) for chunk in chunks]
    else:
        results = _decode_in_threads(md, chunks, keys0, pe, multimasking, workers)
    return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])


def _decode_in_threads(md, chunks, keys0, pe, multimasking, workers):
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
                return _decode_chunk(md, chunk, keys0, pe, multimasking)

        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(run, chunks))
    finally:
        torch.set_num_threads(threads)
