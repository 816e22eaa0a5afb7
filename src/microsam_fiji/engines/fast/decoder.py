"""SAM's mask decoder for point prompts, restructured to do less work per prompt (same maths, float32).

SAM's ``MaskDecoder`` copies the image embedding once per prompt and runs the two-way transformer and the
upscaling on every copy. Here:
* what depends on the image alone (the first layer's image-side projections, the positional encoding's
  projections in the second, the image's share of the upscaling's first product) is computed once per
  image and cached (``decoder_terms``);
* the second layer's attentions take their image-side projections through the first layer norm: the
  cached projections of the image embedding plus corrections of rank hT = 56 per prompt
  (``decoder_terms.ThroughFirstNorm``), instead of products with all 256 channels of the updated image tokens;
* other attention projections of the 4096 image tokens are folded into the few prompt tokens where that is
  cheaper (``q . (W k + b) = (W^T q) . k + q . b``; the output projection applied to the prompt-token values;
  ``decoder_attention``);
* the upscaling's first transposed convolution is carried through the layer norms as products with the
  prompt tokens' few value vectors (``decoder_upscaling.Upscaling``);
* the last token-to-image attention runs only for the tokens whose outputs are used (IoU + selected masks);
* on a CPU, one pass over the image tokens per layer, a block of token rows at a time, with the softmax of
  the following attention accumulated over the blocks (``decoder_attention.Pooling``): each block's
  intermediate results stay in the cache instead of ~15 passes through memory over 4 MB per prompt
  (``decoder_transformer.decode_chunk``);
* the upscaling runs a few image-token rows at a time (its intermediate results stay in the cache) and only
  on the part of the grid that reaches the image (SAM crops its padding away; ``decoder_upscaling``).
Results equal SAM's up to float32 rounding (~1e-5 on logits); tests compare the final instances.

This module holds the entry point (``supported``, ``decode_points``), how prompts are split into chunks and
blocks on a CPU or a GPU (``CHUNK``, ``_block_rows``, looked up here at call time) and the worker threads."""
from __future__ import annotations

import math
from typing import Callable

import torch

from microsam_fiji.engines.fast.decoder_terms import image_terms
from microsam_fiji.engines.fast.decoder_transformer import decode_chunk

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
