"""The package's cover image, drawn from the test image and the objects micro-sam found in it."""
from __future__ import annotations

from pathlib import Path

import numpy as np

# the Model Zoo's rules for covers (bioimage.io upload guidelines)
COVER_MAX_BYTES = 500 * 1024
COVER_PANEL = 256  # pixels per side of each of the cover's two square panels (2:1)
OUTLINE_COLOR = (255, 220, 0)


def write_cover(path: Path, plane: np.ndarray, labels: np.ndarray) -> Path:
    """The test image and, beside it, its objects outlined: two square panels (the image's central square,
    scaled to COVER_PANEL pixels), 2:1 and well under 500 KB, as the Model Zoo asks of covers.

    Args:
        path: The PNG file to write.
        plane: The test image's pixels.
        labels: The instance labels segmented in it.

    Returns:
        ``path``.
    """
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from microsam_fiji.core.micro_sam_compat import to_image

    rgb = to_image(plane)  # the uint8 view micro-sam segments
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    size = (COVER_PANEL, COVER_PANEL)
    image = Image.fromarray(rgb[y0:y0 + side, x0:x0 + side]).resize(size, Image.Resampling.LANCZOS)
    # outlines drawn at the cover's resolution, from the labels scaled there: downscaling drawn outlines would
    # drop some of their pixels and leave them open
    small = np.asarray(Image.fromarray(labels[y0:y0 + side, x0:x0 + side].astype(np.int32)).resize(
        size, Image.Resampling.NEAREST))
    outlined = np.asarray(image).copy()
    outlined[find_boundaries(small, mode="inner")] = OUTLINE_COLOR
    panels = [image, Image.fromarray(outlined)]
    cover = Image.new("RGB", (2 * COVER_PANEL, COVER_PANEL))
    for i, panel in enumerate(panels):
        cover.paste(panel, (i * COVER_PANEL, 0))
    cover.save(path, optimize=True)
    return path
