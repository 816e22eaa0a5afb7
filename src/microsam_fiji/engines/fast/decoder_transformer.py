"""SAM's two-way transformer, final attention and upscaling for a chunk of point prompts (``decoder``),
as two passes over the image tokens, a block of token rows at a time, on the per-image terms (``decoder_terms``)."""
from __future__ import annotations

import math

import torch

from microsam_fiji.engines.fast.decoder_attention import (ImageToToken, Pooling, fold_queries, folded_scores,
                                                          scaled_heads, token_output, token_to_image_cached)
from microsam_fiji.engines.fast.decoder_terms import ImageTerms
from microsam_fiji.engines.fast.decoder_upscaling import first_conv, region_part, upscale_masks


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
