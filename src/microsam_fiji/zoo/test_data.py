"""The package's test image: where it comes from, its checks, and the test / sample tensors written from it.

The test tensors are what bioimageio.core reproduces; the test image is also the cover's and the one the
documentation's Validation section reports on."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from microsam_fiji.core.errors import UserError
from microsam_fiji.zoo.tensors import MIN_SIZE

DEFAULT_TEST_IMAGE = Path(__file__).resolve().parent.parent / "demo" / "nuclei-256.tif"
DEFAULT_TEST_IMAGE_LICENSE = DEFAULT_TEST_IMAGE.with_name("nuclei-256-LICENSE.txt")
# where the built-in crop comes from (the documentation names it)
TEST_IMAGE_URL = "https://github.com/stardist/stardist/blob/main/stardist/data/images/img2d.tif"
TEST_IMAGE_LICENSE_FILE = "test_image_LICENSE.txt"  # attachment: the built-in test / cover image's licence


def read_test_image(test_image) -> tuple[np.ndarray, str]:
    """Read and check the test image.

    Args:
        test_image: A path, a 2D / RGB array, or None for the built-in nuclei crop.

    Returns:
        (the (Y, X) or (Y, X, 3) pixels, where they came from in words).

    Raises:
        UserError: the image has more than one plane or is smaller than ``MIN_SIZE`` on a side.
    """
    from microsam_fiji.core.images import to_planes
    from microsam_fiji.core.tiff_io import read_image

    if test_image is None:
        test_image, origin = DEFAULT_TEST_IMAGE, "built-in crop of stardist's img2d.tif"
    if isinstance(test_image, (str, os.PathLike)):
        origin = Path(test_image).name if test_image != DEFAULT_TEST_IMAGE else origin
        loaded = read_image(test_image)
        planes = to_planes(loaded.data, loaded.axes or None)
    else:
        origin = "array passed to export_package"
        planes = to_planes(test_image)
    if len(planes.data) != 1:
        raise UserError(f"the test image has {len(planes.data)} planes: pass a single 2D (or RGB) image")
    plane = planes.data[0]
    if min(plane.shape[:2]) < MIN_SIZE:
        raise UserError(f"the test image is {plane.shape[0]}x{plane.shape[1]} pixels: use one of at least "
                        f"{MIN_SIZE}x{MIN_SIZE}")
    return plane, origin


def is_built_in(test_image) -> bool:
    """Whether ``test_image`` (as passed to export) is the built-in crop, whose licence the package must carry."""
    return test_image is None or (isinstance(test_image, (str, os.PathLike))
                                  and Path(test_image).resolve() == DEFAULT_TEST_IMAGE)


def as_tensor(plane: np.ndarray) -> np.ndarray:
    """(1, C, Y, X) float32: the package's input layout."""
    arr = plane.astype(np.float32)
    return arr[None, None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)[None]


def write_test_files(folder: Path, plane: np.ndarray, expected: np.ndarray, built_in_image: bool) -> dict[str, Path]:
    """Write the test and sample tensors (and the built-in image's licence) into ``folder``.

    Args:
        folder: Where the package is being put together.
        plane: The test image's pixels.
        expected: The test output, (1, 3, Y, X): micro-sam's own decoder maps for ``plane``.
        built_in_image: Whether ``plane`` is the built-in crop (its licence is then attached).

    Returns:
        The written files by role: ``test_input``, ``test_output``, ``sample_input``, ``sample_output`` and, for
        the built-in image, ``test_image_license``.
    """
    import tifffile

    files = {"test_input": folder / "test_input.npy", "test_output": folder / "test_output.npy",
             "sample_input": folder / "sample_input.tif", "sample_output": folder / "sample_output.tif"}
    np.save(files["test_input"], as_tensor(plane))
    np.save(files["test_output"], expected)
    tifffile.imwrite(files["sample_input"], plane)  # the same pixels, for people and imageio
    # ImageJ's layout, so that ImageJ opens it (the package's macro turns these maps into labels)
    tifffile.imwrite(files["sample_output"], expected[0], imagej=True)
    if built_in_image:
        files["test_image_license"] = folder / TEST_IMAGE_LICENSE_FILE
        shutil.copyfile(DEFAULT_TEST_IMAGE_LICENSE, files["test_image_license"])
    return files
