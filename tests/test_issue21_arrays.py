"""Arrays from other libraries keep their meaning: an xarray's dims name its axes (also pyimagej's names), a torch
tensor that requires grad is segmented as its values, a parameter tiled APG ignores is named (issue 21)."""
from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import to_planes


def test_xarray_dims_name_the_axes(small_image):
    two_channels = xr.DataArray(np.stack([small_image, small_image]), dims=("c", "y", "x"))
    with pytest.raises(UserError, match="the image has 2 channels"):  # not two z-slices, as the shape alone says
        to_planes(two_channels)
    one_channel = xr.DataArray(small_image[:, :, None], dims=("y", "x", "c"))
    planes = to_planes(one_channel)
    assert planes.data.shape[0] == 1 and planes.label_shape == small_image.shape
    # pyimagej's ij.py.from_java names: pln (z), row (y), col (x)
    stack = xr.DataArray(np.stack([small_image.T, small_image.T]).transpose(0, 2, 1), dims=("pln", "row", "col"))
    assert to_planes(stack).label_shape == (2,) + small_image.shape
    # dims win over the shape's guess: (y, x, z) with 3 planes is no RGB image
    assert to_planes(xr.DataArray(np.stack([small_image] * 3, -1), dims=("y", "x", "z"))).label_shape == \
        (3,) + small_image.shape
    with pytest.raises(UserError, match=r"dims \('b', 'y', 'x'\).*x, y, z, t, c"):
        to_planes(xr.DataArray(small_image[None], dims=("b", "y", "x")))


def test_a_tensor_that_requires_grad_is_segmented(demo_model, small_image):
    import torch

    from microsam_fiji import segment

    crop = small_image[:96, :96].astype(np.float32)
    tensor = torch.tensor(crop, requires_grad=True)
    assert np.array_equal(segment(tensor, demo_model), segment(crop, demo_model))


def test_mask_threshold_on_a_tiled_image_says_it_is_not_used(demo_model, small_image):
    from microsam_fiji.engines.segment import TilingWarning, segment_with_scores

    with pytest.warns(TilingWarning, match="mask_threshold=0.3 is not used on a tiled image"):
        segment_with_scores(small_image, demo_model, tile_shape=(128, 256), halo=(0, 0), mask_threshold=0.3, min_size=10 ** 6)
