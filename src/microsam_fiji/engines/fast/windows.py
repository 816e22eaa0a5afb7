"""SAM's mask post-processing (upscale the low-resolution logits to the image, threshold, stability score,
box) computed only in a window around each mask instead of on the full image.

SAM resizes the 256 x 256 logits to 1024 x 1024, crops the padding and resizes to the image: both bilinear,
so the chain is one separable linear map ``R @ logits @ C.T`` whose weights are non-negative and sum to one.
A full-resolution pixel is therefore never larger than the low-resolution logits it mixes; pixels above
``threshold - 1`` (the lower bound of micro-sam's stability score) can only lie where the rows and columns of
``R`` and ``C`` reach the low-resolution pixels above it. The window covers those rows and columns, so the
mask, its box, area and stability score equal those computed at full size (up to float32 rounding of the
interpolation, ~1e-6 of the logits)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from microsam_fiji.engines.fast.mask_set import MaskSet

STABILITY_OFFSET = 1.0  # micro-sam's _process_masks_for_batch: calculate_stability_score(masks, threshold, 1.0)


def _linear_map(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): PyTorch's 1-D linear interpolation (align_corners=False) as a matrix."""
    eye = torch.eye(n_in, dtype=torch.float64)[None]
    return F.interpolate(eye, size=n_out, mode="linear", align_corners=False)[0].T


@lru_cache(maxsize=16)
def _axis(low: int, model_size: int, input_size: int, original_size: int):
    """The map from ``low`` logits to ``original_size`` pixels along one axis, and each output's support."""
    m = _linear_map(low, model_size)[:input_size]
    if original_size != input_size:
        m = _linear_map(input_size, original_size) @ m
    nonzero = m != 0
    first = nonzero.float().argmax(dim=1)
    last = low - 1 - nonzero.flip(1).float().argmax(dim=1)
    return m.float(), first.numpy(), last.numpy()


@dataclass
class Windows:
    """Post-processing for one predictor image (``predictor.input_size`` / ``original_size``)."""

    rows: tuple  # _axis(...) for the image's rows
    cols: tuple  # and for its columns

    @classmethod
    def for_predictor(cls, predictor) -> "Windows":
        model = predictor.model
        size = model.image_encoder.img_size
        low = 4 * model.prompt_encoder.image_embedding_size[0]
        (h, w), (hh, ww) = predictor.input_size, predictor.original_size
        return cls(_axis(low, size, int(h), int(hh)), _axis(low, size, int(w), int(ww)))

    @property
    def region(self) -> tuple[int, int]:
        """The low-resolution rows and columns that reach the image (the rest only reaches SAM's padding)."""
        return int(self.rows[2].max()) + 1, int(self.cols[2].max()) + 1

    def masks(self, low_res: torch.Tensor, ious: torch.Tensor, threshold, offset=(0, 0),
              exclusive_crops: bool = False):
        """Per mask of ``low_res`` (B, low, low): crop, origin, box, area, predicted IoU, stability score,
        as ``microsam_fiji.engines.fast.mask_set.MaskSet`` keeps them. ``threshold``: one for all masks or one per
        mask."""
        out = MaskSet()
        low_res = low_res.float().cpu()
        thresholds = np.array(np.broadcast_to(np.asarray(threshold, dtype=np.float64), (low_res.shape[0],)))
        hot = low_res > torch.from_numpy(thresholds - STABILITY_OFFSET).float().view(-1, 1, 1)
        any_rows, any_cols = hot.any(dim=2).numpy(), hot.any(dim=1).numpy()
        oy, ox = int(offset[0]), int(offset[1])
        end = 0 if exclusive_crops else 1
        for k in range(low_res.shape[0]):
            cut = float(thresholds[k])
            window = self._window(low_res[k], any_rows[k], any_cols[k])
            if window is None:
                crop, box, area, stability = np.zeros((end, end), bool), (0, 0, 0, 0), 0, np.float32("nan")
            else:
                logits, y0, x0 = window
                mask = logits > cut
                inter = int((logits > cut + STABILITY_OFFSET).sum())
                union = int((logits > cut - STABILITY_OFFSET).sum())
                stability = np.float32(inter) / np.float32(union) if union else np.float32("nan")
                ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
                if ys.size == 0:  # micro-sam's batched_mask_to_box gives empty masks the box 0, 0, 0, 0
                    crop, box, area = np.zeros((end, end), bool), (0, 0, 0, 0), 0
                else:
                    a, b, c, d = ys[0], ys[-1], xs[0], xs[-1]
                    crop = mask[a:b + end, c:d + end]
                    box, area = (c + x0, a + y0, d + x0, b + y0), int(mask.sum())
            x_0, y_0, x_1, y_1 = box
            out.crops.append(np.ascontiguousarray(crop))
            out.origins.append((y_0 + oy, x_0 + ox))
            out.boxes.append((x_0 + ox, y_0 + oy, x_1 + ox, y_1 + oy))
            out.areas.append(area)
            out.stability.append(float(stability))
        out.iou_preds.extend(ious.float().cpu().numpy().tolist())
        return out

    def _window(self, logits: torch.Tensor, any_rows: np.ndarray, any_cols: np.ndarray):
        """Full-resolution logits where they can exceed the stability's lower threshold: (values, y0, x0)."""
        rows, cols = np.nonzero(any_rows)[0], np.nonzero(any_cols)[0]
        if rows.size == 0:
            return None
        (rm, rfirst, rlast), (cm, cfirst, clast) = self.rows, self.cols
        # outputs whose support [first, last] meets the hot low-resolution span (supports grow monotonically)
        y0, y1 = int(np.searchsorted(rlast, rows[0], "left")), int(np.searchsorted(rfirst, rows[-1], "right"))
        x0, x1 = int(np.searchsorted(clast, cols[0], "left")), int(np.searchsorted(cfirst, cols[-1], "right"))
        if y1 <= y0 or x1 <= x0:
            return None
        r0, r1 = int(rfirst[y0]), int(rlast[y1 - 1]) + 1
        c0, c1 = int(cfirst[x0]), int(clast[x1 - 1]) + 1
        values = rm[y0:y1, r0:r1] @ logits[r0:r1, c0:c1] @ cm[x0:x1, c0:c1].T
        return values.numpy(), y0, x0
