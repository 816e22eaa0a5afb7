"""Fuzz-style: random shapes, pixel types and value ranges through ``microsam_fiji.engines.segment``.

Every input gives labels of the image's shape (without RGB samples) or one ``UserError`` line; no other exception
and no numpy (or other) warning reaches the user, except the one-line ``ImageRescaledWarning`` that reports a
rescale. Most inputs are refused, constant or fixed before the model; the few that reach it are tiny, and only
the first few of those run the model (the rest are checked up to the planes the model would get)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from microsam_fiji import segment
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import ImageRescaledWarning, is_constant, to_planes

MODEL_RUNS = 1  # an encoder run and APG on noise: seconds on a free CPU
CASES = 120


def expected_label_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axis rules of the module doc of microsam_fiji.core.images, written out independently."""
    if len(shape) == 3 and shape[-1] == 3 or len(shape) == 4 and shape[-1] == 3:
        return shape[:-1]
    return shape


def values(rng, shape, kind: str) -> np.ndarray:
    n = int(np.prod(shape))
    if n == 0:
        return np.zeros(0)
    if kind == "noise":
        return rng.random(n)
    if kind == "constant":
        return np.full(n, rng.normal() * 10.0 ** rng.integers(-30, 30))
    if kind == "huge":  # beyond float32 and near float64's limits
        return (rng.random(n) - 0.5) * rng.choice([6e38, 3.4e38, 1e300])
    if kind == "tiny":
        return rng.random(n) * rng.choice([1e-30, 1e-10, 1e-300])
    if kind == "offset":  # small differences on a large value
        return 1e9 + rng.random(n) * 100
    if kind == "outlier":
        v = rng.random(n)
        v[rng.integers(n)] = rng.choice([-3e38, 3e38, 65535.0, -1e300])
        return v
    if kind == "special":
        v = rng.random(n)
        v[rng.integers(n)] = rng.choice([np.nan, np.inf, -np.inf])
        return v
    raise AssertionError(kind)


def cast(rng, v: np.ndarray, dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if v.size == 0:
        return v.astype(dtype)
    if dtype.kind == "b":
        return v > np.nanmedian(v) if np.isfinite(v).any() else np.zeros(v.shape, bool)
    if dtype.kind == "c":
        with np.errstate(over="ignore"):
            return v.astype(dtype) + 1j
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        finite = np.nan_to_num(v, nan=0.0, posinf=info.max, neginf=info.min)
        lo, hi = float(np.min(finite)), float(np.max(finite))
        scaled = (finite / 2 - lo / 2) / (hi / 2 - lo / 2) if hi > lo else np.zeros_like(finite)  # halves: no inf
        top = min(float(rng.choice([1, 255, 65535, info.max])), float(info.max) * 0.999)
        out = scaled * top
        if dtype.kind == "i" and rng.random() < 0.5:  # negative values too
            out -= top / 2
        return out.astype(dtype)
    with np.errstate(over="ignore"):  # building the input (float16/32 of huge values is inf): not the code tested
        return v.astype(dtype)


SHAPES = [(1, 1), (1, 2), (2, 2), (5, 1), (7, 3), (70000, 1), (1, 70000), (3, 3, 3), (2, 5, 5), (2, 2, 6, 6),
          (4, 4, 4), (6, 6, 4), (2, 6, 6, 3), (0, 5), (5, 0, 3), (9,), (), (2, 3, 4, 5, 6), (16, 16)]
DTYPES = [np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64, np.float16,
          np.float32, np.float64, bool, np.complex64]
KINDS = ["noise", "constant", "huge", "tiny", "offset", "outlier", "special"]


def test_random_inputs_give_labels_or_one_user_error_line(demo_model):
    rng = np.random.default_rng(13)
    model_runs, outcomes = 0, {"labels": 0, "error": 0, "planes only": 0}
    for case in range(CASES):
        shape = SHAPES[rng.integers(len(SHAPES))]
        dtype = DTYPES[rng.integers(len(DTYPES))]
        kind = KINDS[rng.integers(len(KINDS))]
        image = cast(rng, values(rng, shape, kind).reshape(shape), dtype)
        what = f"case {case}: {shape} {np.dtype(dtype).name} {kind}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                planes = to_planes(image)
                reaches_model = not all(is_constant(p) for p in planes.data)
                # a long image is tiled (70000 x 1: ~90 encoder runs): only tiny ones go to the model
                if reaches_model and (model_runs >= MODEL_RUNS or max(image.shape) > 64):
                    outcomes["planes only"] += 1
                    assert planes.label_shape == expected_label_shape(image.shape), what
                    continue
                model_runs += reaches_model
                labels = segment(image, demo_model)
            except UserError as err:
                outcomes["error"] += 1
                message = str(err)
                assert message and "\n" not in message and "Traceback" not in message, what
                continue
            finally:
                escaped = [w for w in caught if not issubclass(w.category, ImageRescaledWarning)]
                assert not escaped, f"{what}: {[f'{w.category.__name__}: {w.message}' for w in escaped]}"
                assert all("\n" not in str(w.message) for w in caught), what
        outcomes["labels"] += 1
        assert labels.dtype == np.uint32 and labels.shape == expected_label_shape(image.shape), what
    assert model_runs == MODEL_RUNS and min(outcomes.values()) > 0, outcomes


@pytest.mark.parametrize("image,message", [
    (np.zeros((4, 4), np.complex64), "unsupported pixel type complex64"),
    (np.zeros((0, 5)), "the image is empty"),
    (np.array(3.0), "cannot tell the axes of a 0D image"),
    (np.arange(9.0), "cannot tell the axes of a 1D image"),
    (np.array([[1.0, np.nan], [2.0, 3.0]]), "NaN or infinite"),
    (np.array([["a", "b"]]), "unsupported pixel type"),
    (np.array([[1, None]], dtype=object), "unsupported pixel type object"),
])
def test_inputs_refused_before_the_model(demo_model, image, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match=message) as err:
            segment(image, demo_model)
    assert "\n" not in str(err.value)


def test_rescaled_extremes_segment_like_the_plain_image(demo_model, stardist_image):
    """Issue 13.3: x 1e-30 and +-3e38 gave 1 object (micro-sam's scaling broke) where the image has several."""
    nuclei = stardist_image[384:512, 0:128].astype(np.float64)
    plain = segment(nuclei, demo_model)
    assert plain.max() > 1
    for image in (nuclei * 1e-30, (nuclei - nuclei.min()) / np.ptp(nuclei) * 6e38 - 3e38):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", ImageRescaledWarning)
            assert np.array_equal(segment(image, demo_model), plain)
