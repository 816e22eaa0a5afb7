"""Input handling for what ImageJ users have: pixel types, RGB, stacks, bad shapes."""
from __future__ import annotations

import numpy as np
import pytest

from microsam_fiji import UserError
from microsam_fiji.images import guess_axes, to_planes


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_2d_pixel_types_give_one_plane(dtype):
    planes = to_planes(np.ones((5, 7), dtype=dtype))
    assert planes.data.shape == (1, 5, 7)
    assert planes.label_shape == (5, 7)


def test_rgb_keeps_samples_and_drops_alpha():
    rgba = np.random.default_rng(0).integers(0, 255, (6, 8, 4), dtype=np.uint8)
    planes = to_planes(rgba, axes="YXS")
    assert planes.data.shape == (1, 6, 8, 3)
    np.testing.assert_array_equal(planes.data[0], rgba[..., :3])
    assert to_planes(rgba[..., :3]).label_shape == (6, 8)  # a trailing 3 is RGB without axes


def test_zt_stack_is_flattened_in_imagej_order():
    stack = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)  # T, Z, Y, X
    planes = to_planes(stack, axes="TZYX")
    assert planes.stack_shape == (2, 3) and planes.data.shape == (6, 4, 5)
    np.testing.assert_array_equal(planes.data[4], stack[1, 1])
    # axes in another order are transposed to stack-then-YX
    planes = to_planes(np.moveaxis(stack, 0, -1), axes="ZYXT")
    assert planes.stack_shape == (3, 2)
    np.testing.assert_array_equal(planes.data[1], stack[1, 0])


def test_single_channel_axis_is_dropped():
    assert to_planes(np.zeros((1, 4, 4)), axes="CYX").label_shape == (4, 4)


@pytest.mark.parametrize("shape,axes,message", [
    ((2, 3, 8, 8), "ZCYX", "has 3 channels: segment one channel"),
    ((2, 3, 8, 8), None, "cannot tell the axes of a 4D image"),
    ((0, 8), None, "the image is empty"),
    ((8, 8), "ZYX", "do not fit an image of shape"),
    ((8, 8, 2), "YXS", "RGB axis S must have 3 samples"),
])
def test_bad_shapes_get_one_line_errors(shape, axes, message):
    with pytest.raises(UserError, match=message) as err:
        to_planes(np.zeros(shape, dtype=np.float32), axes=axes)
    assert "\n" not in str(err.value)


def test_nan_and_inf_are_refused_with_the_imagej_fix():
    img = np.zeros((8, 8), np.float32)
    img[2, 3] = np.nan
    with pytest.raises(UserError, match="Remove NaNs"):
        to_planes(img)
    img[2, 3] = np.inf
    with pytest.raises(UserError, match="NaN or infinite"):
        to_planes(img)


def test_complex_pixels_are_refused():
    with pytest.raises(UserError, match="unsupported pixel type"):
        to_planes(np.zeros((4, 4), dtype=np.complex64))


def test_guess_axes():
    assert guess_axes((5, 6)) == "YX"
    assert guess_axes((5, 6, 3)) == "YXS"
    assert guess_axes((4, 5, 6)) == "ZYX"
    assert guess_axes((4, 5, 6, 3)) == "ZYXS"
