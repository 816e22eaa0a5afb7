"""``engine="fast"``: APG with micro-sam's semantics (see the package docstring); AIS is micro-sam's own."""
from __future__ import annotations

import numpy as np

from microsam_fiji.core.progress import report
from microsam_fiji.engines import micro_sam
from microsam_fiji.engines.fast import nms
from microsam_fiji.engines.fast.mask_set import MaskSet
from microsam_fiji.engines.fast.masks import predict_masks
from microsam_fiji.engines.fast.prompts import derive_point_prompts


def _prompt_params(params: dict) -> dict:
    return {name: params[name] for name in ("foreground_threshold", "center_distance_threshold",
                                            "boundary_distance_threshold")}


def _tile_prompts(points_yx: np.ndarray, shape, tile_shape, halo):
    """Prompts grouped by tile as micro-sam's ``batched_tiled_inference`` groups them: tile ids in increasing
    order, prompts in their original order, positions relative to the tile with halo."""
    from bioimage_cpp.utils import Blocking

    tiling = Blocking([0, 0], list(shape), list(tile_shape))
    groups: dict[int, list[int]] = {}
    for k, (y, x) in enumerate(points_yx.tolist()):
        groups.setdefault(tiling.coordinates_to_block_id([int(y), int(x)]), []).append(k)
    for tile_id in sorted(groups):
        begin = tiling.get_block_with_halo(tile_id, list(halo)).outer_block.begin
        yield tile_id, tuple(begin), points_yx[groups[tile_id]] - np.asarray(begin)


def prompts(state, params: dict) -> np.ndarray:
    """(N, 2) y, x point prompts from the state's decoder maps."""
    return derive_point_prompts(*state.maps, **_prompt_params(params))


def apg_masks(predictor, state, params: dict, points: np.ndarray,
              decoder=None) -> tuple[MaskSet, tuple[int, int]]:
    """SAM masks for ``points`` on the state's embeddings (tiled or not), in micro-sam's order."""
    from micro_sam import util

    shape = tuple(state.maps[0].shape)
    common = dict(batch_size=int(params["batch_size"]), multimasking=bool(params["multimasking"]),
                  decoder=decoder)
    if not state.tiled:
        util.set_precomputed(predictor, state.embeddings)
        masks = predict_masks(predictor, points[:, ::-1], mask_threshold=params["mask_threshold"], **common)
        return masks, shape
    masks = MaskSet()
    for tile_id, begin, tile_points in _tile_prompts(points, shape, state.tile_shape, state.halo):
        util.set_precomputed(predictor, state.embeddings, tile_id=tile_id)
        # micro-sam's tiled generator does not pass mask_threshold on: tiles always use the model's threshold
        masks.extend(predict_masks(predictor, tile_points[:, ::-1], mask_threshold=None, offset=begin,
                                   exclusive_crops=True, **common))
    return masks, shape


def default_decoder(model):
    """Our restructured mask decoder where the model's layout allows it, else SAM's own (``None``)."""
    from microsam_fiji.engines.fast.decoder import decode_points, supported

    return decode_points if supported(model.predictor.model) else None


def generate(model, mode: str, state, params: dict, decoder="auto") -> tuple[np.ndarray, dict[int, float]]:
    """Engine entry point (see ``microsam_fiji.engines.registry.ENGINE_IMPLS``); ``decoder=None``: SAM's own."""
    if mode != "apg" or params.get("refine_with_box_prompts"):  # AIS is already fast; box refinement: rare
        return micro_sam.generate(model, mode, state, params)
    if decoder == "auto":
        decoder = default_decoder(model)
    masks, shape = apg_masks(model.predictor, state, params, prompts(state, params), decoder=decoder)
    return merge(masks, shape, params, state.tiled)


def merge(masks: MaskSet, shape, params: dict, tiled: bool) -> tuple[np.ndarray, dict[int, float]]:
    """NMS and painting into labels, with per-label predicted IoU."""
    if len(masks) == 0:
        return np.zeros(shape, dtype=np.uint32), {}
    report("merging masks", len(masks), len(masks))
    keep = nms.select(masks, int(params["min_size"]), float(params["nms_threshold"]),
                      bool(params["intersection_over_min"]), tiled=tiled)
    return nms.to_labels(masks, keep, shape, int(params["min_size"]))
