"""Label TIFFs as ImageJ reads them: pixel type, >65,535 ids, calibration, atomic writes."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import Calibration, read_image, write_labels


def test_up_to_65535_ids_are_16_bit(tmp_path):
    labels = np.arange(65536, dtype=np.uint32).reshape(256, 256)
    write_labels(tmp_path / "l.tif", labels)
    back = tifffile.imread(tmp_path / "l.tif")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, labels)


def test_more_than_65535_ids_stay_exact_as_32_bit_float(tmp_path):
    labels = np.arange(300 * 300, dtype=np.uint32).reshape(300, 300) * 7  # ids up to 629,993
    write_labels(tmp_path / "l.tif", labels)
    back = tifffile.imread(tmp_path / "l.tif")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back.astype(np.uint32), labels)


def test_ids_beyond_float_precision_are_refused(tmp_path):
    labels = np.array([[0, 2**24 + 1]], dtype=np.uint32)
    with pytest.raises(UserError, match="cannot be stored exactly"):
        write_labels(tmp_path / "l.tif", labels)
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_calibration_round_trip(tmp_path):
    image = np.zeros((3, 20, 30), np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", image, imagej=True, resolution=(1 / 0.25, 1 / 0.5),
                     metadata={"unit": "micron", "spacing": 2.0, "axes": "ZYX"})
    loaded = read_image(tmp_path / "in.tif")
    assert loaded.axes == "ZYX"
    assert loaded.calibration == Calibration(pixel_width=0.25, pixel_height=0.5, pixel_depth=2.0, unit="µm")
    write_labels(tmp_path / "out.tif", image.astype(np.uint32), loaded.calibration, axes="ZYX")
    again = read_image(tmp_path / "out.tif")
    assert again.calibration == loaded.calibration and again.axes == "ZYX"


def test_overwrite_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "l.tif"
    write_labels(path, np.ones((4, 4), np.uint32))
    write_labels(path, np.full((4, 4), 2, np.uint32))
    assert tifffile.imread(path).max() == 2
    assert [p.name for p in tmp_path.iterdir()] == ["l.tif"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    umask = os.umask(0o022)
    try:
        path = write_labels(tmp_path / "l.tif", np.ones((4, 4), np.uint32))
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_reading_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_image(tmp_path / "missing.tif")
    (tmp_path / "bad.tif").write_bytes(b"no tiff here")
    with pytest.raises(UserError, match="not a readable TIFF"):
        read_image(tmp_path / "bad.tif")


def test_png_is_read_without_calibration(tmp_path):
    from skimage.io import imsave

    imsave(tmp_path / "a.png", np.arange(64, dtype=np.uint8).reshape(8, 8))
    loaded = read_image(tmp_path / "a.png")
    assert loaded.data.shape == (8, 8) and loaded.calibration == Calibration()
