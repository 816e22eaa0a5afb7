"""The fast engine's masks before NMS, in image coordinates (cropped to where each mask lies)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MaskSet:
    """Masks in image coordinates. ``boxes``: micro-sam's NMS boxes (x0, y0, x1, y1, max inclusive);
    ``crops[k]`` sits at ``origins[k]`` (y, x) and holds what micro-sam compares and paints of mask k."""

    crops: list = field(default_factory=list)
    origins: list = field(default_factory=list)
    boxes: list = field(default_factory=list)
    areas: list = field(default_factory=list)
    iou_preds: list = field(default_factory=list)
    stability: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.crops)

    def extend(self, other: "MaskSet") -> None:
        for name in ("crops", "origins", "boxes", "areas", "iou_preds", "stability"):
            getattr(self, name).extend(getattr(other, name))
