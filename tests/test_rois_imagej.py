"""Our ROIs through the real ImageJ 1.x (ij.jar): ``RoiDecoder`` + ``Roi.getMask()`` give back every object exactly,
and ``rois_to_labels`` fills ImageJ-made ROIs exactly as ImageJ does.

The JVM is started the way the rest of the test session starts it (display when $DISPLAY is set); the explicit
``java.awt.headless=true`` case runs in a subprocess, since one process cannot hold two JVMs."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import roifile

from microsam_fiji.imagej.jvm import start_imagej
from microsam_fiji.rois.decode import rois_to_labels
from microsam_fiji.rois.encode import labels_to_rois

from helpers.shapes import hard_shapes, random_blobs, random_labels


@pytest.fixture(scope="module")
def ij():
    start_imagej()
    from jpype import JClass

    return JClass


def decode(ij, roi: roifile.ImagejRoi):
    return ij("ij.io.RoiDecoder")(roi.tobytes(), f"{roi.name}.roi").getRoi()


def java_mask(jroi) -> tuple[np.ndarray, int, int]:
    """ImageJ's own mask of a ROI (bulk copy of the byte[] pixels), with its bounds' origin."""
    bounds = jroi.getBounds()
    mask = jroi.getMask()
    if mask is None:  # rectangles: the whole bounds
        return np.ones((bounds.height, bounds.width), bool), bounds.x, bounds.y
    pixels = np.asarray(mask.getPixels()).reshape(mask.getHeight(), mask.getWidth())
    return pixels != 0, bounds.x, bounds.y


def assert_imagej_masks_exact(ij, labels: np.ndarray, rois) -> None:
    """Every ROI's ImageJ mask is exactly its object's pixels (IoU 1.0 for 100% of the objects)."""
    planes = labels.reshape(-1, *labels.shape[-2:])
    assert len(rois) == sum(len(np.unique(p)) - 1 for p in planes)
    for roi in rois:
        jroi = decode(ij, roi)
        label = int(str(jroi.getProperty("id")))
        plane = planes[max(jroi.getPosition(), 1) - 1]
        mask, x, y = java_mask(jroi)
        h, w = mask.shape
        obj = plane == label
        assert 0 <= x and 0 <= y and x + w <= obj.shape[1] and y + h <= obj.shape[0], roi.name
        assert np.array_equal(mask, obj[y:y + h, x:x + w]), roi.name
        assert mask.sum() == obj.sum() == int(str(jroi.getProperty("area"))), roi.name  # nothing outside the bounds
        expected_type = "Composite" if roi.composite else "Traced"
        assert str(jroi.getTypeAsString()) == expected_type and str(jroi.getName()) == roi.name


def test_stardist_mask_rois_are_exact_in_imagej(ij, stardist_mask):
    rois = labels_to_rois(stardist_mask, scores={1: 0.75})
    assert_imagej_masks_exact(ij, stardist_mask, rois)
    assert float(str(decode(ij, rois[0]).getProperty("score"))) == 0.75


def test_hard_shapes_are_exact_in_imagej(ij):
    lab, composite = hard_shapes()
    rois = labels_to_rois(lab)
    assert_imagej_masks_exact(ij, lab, rois)
    for roi in rois:
        jroi = decode(ij, roi)
        is_shape = jroi.getClass().getName() == "ij.gui.ShapeRoi"
        assert is_shape == (roi.properties["id"] in composite)
        if is_shape:  # one sub-path per outline: outer outlines and holes
            assert len(jroi.getRois()) >= 2


@pytest.mark.parametrize("make", [lambda: random_blobs(4, shape=(80, 90), n=30),
                                  lambda: random_labels(11, shape=(30, 34), n_ids=5)])
def test_random_objects_are_exact_in_imagej(ij, make):
    lab = make()
    assert_imagej_masks_exact(ij, lab, labels_to_rois(lab))


def test_stack_positions_in_imagej(ij):
    stack = np.stack([random_labels(s, shape=(20, 24), n_ids=4) + 10 * s * (random_labels(s, (20, 24), 4) > 0)
                      for s in range(3)])
    rois = labels_to_rois(stack)
    assert_imagej_masks_exact(ij, stack, rois)
    assert sorted({int(decode(ij, r).getPosition()) for r in rois}) == [1, 2, 3]
    jroi = decode(ij, labels_to_rois(stack[:2], positions=[(0, 2, 5), (0, 3, 5)])[-1])
    assert (jroi.getZPosition(), jroi.getTPosition()) == (3, 5)


def _imagej_fill(ij, jrois, shape) -> np.ndarray:
    out = np.zeros(shape, np.uint32)
    for i, jroi in enumerate(jrois, 1):
        mask, x, y = java_mask(jroi)
        ys, xs = np.nonzero(mask)
        keep = (ys + y < shape[0]) & (xs + x < shape[1]) & (ys + y >= 0) & (xs + x >= 0)
        out[ys[keep] + y, xs[keep] + x] = i
    return out


def test_rois_to_labels_fills_imagej_rois_like_imagej(ij):
    """ImageJ-made polygons (integer and sub-pixel, also on exact half-pixel ties), ovals, rectangles, ellipses and
    composite shapes, written by ImageJ's RoiEncoder: filled by us and by ImageJ (decoding those bytes, as when it
    opens a RoiSet.zip) to the same pixels."""
    from jpype import JArray, JFloat, JInt

    rng = np.random.default_rng(3)
    PolygonRoi, Roi, ShapeRoi = ij("ij.gui.PolygonRoi"), ij("ij.gui.Roi"), ij("ij.gui.ShapeRoi")
    encoder = ij("ij.io.RoiEncoder")
    shape = (48, 56)
    filled = 0
    for trial in range(40):
        n = int(rng.integers(3, 12))
        xs, ys = rng.uniform(-3, 58, n), rng.uniform(-3, 50, n)
        if trial % 2:  # vertices on half pixels put pixel centres exactly on edges
            xs, ys = np.round(xs * 2) / 2, np.round(ys * 2) / 2
        fx, fy = JArray(JFloat)(xs.tolist()), JArray(JFloat)(ys.tolist())
        ox, oy = JArray(JFloat)(rng.uniform(0, 56, 5).tolist()), JArray(JFloat)(rng.uniform(0, 48, 5).tolist())
        other = PolygonRoi(ox, oy, 5, Roi.POLYGON)
        made = [
            PolygonRoi(JArray(JInt)(xs.astype(int).tolist()), JArray(JInt)(ys.astype(int).tolist()), n, Roi.POLYGON),
            PolygonRoi(fx, fy, n, Roi.FREEROI),
            PolygonRoi(fx, fy, n, Roi.TRACED_ROI),
            ij("ij.gui.OvalRoi")(int(xs[0]), int(ys[0]), int(rng.integers(1, 20)), int(rng.integers(1, 20))),
            Roi(int(xs[1]), int(ys[1]), int(rng.integers(1, 15)), int(rng.integers(1, 15))),
            ShapeRoi(PolygonRoi(fx, fy, n, Roi.FREEROI)).xor(ShapeRoi(other)),
            ij("ij.gui.OvalRoi")(float(xs[0]), float(ys[0]), float(rng.uniform(1, 20)), float(rng.uniform(1, 20))),
            Roi(float(xs[1]), float(ys[1]), float(rng.uniform(1, 15)), float(rng.uniform(1, 15))),
            ij("ij.gui.EllipseRoi")(float(xs[0]), float(ys[0]), float(xs[1]), float(ys[1]), float(rng.uniform(.2, 1))),
        ]
        for jroi in made:
            data = bytes(encoder.saveAsByteArray(jroi))
            want = _imagej_fill(ij, [ij("ij.io.RoiDecoder")(data, "r.roi").getRoi()], shape)
            got = rois_to_labels([roifile.ImagejRoi.frombytes(data)], shape)
            assert np.array_equal(got, want), (trial, str(jroi.getTypeAsString()))
            filled += bool(want.any())
    assert filled > 300  # most are inside the image


def test_headless_jvm_decodes_exactly_in_subprocess(stardist_mask):
    """The same acceptance check under an explicitly headless JVM (java.awt.headless=true)."""
    script = textwrap.dedent("""
        import numpy as np, tifffile, sys
        from microsam_fiji.imagej.jvm import start_imagej
        from microsam_fiji.rois.encode import labels_to_rois
        assert start_imagej(headless=True)["headless"]
        from jpype import JClass
        assert JClass("java.awt.GraphicsEnvironment").isHeadless()
        lab = tifffile.imread(sys.argv[1])
        exact = 0
        rois = labels_to_rois(lab)
        for roi in rois:
            j = JClass("ij.io.RoiDecoder")(roi.tobytes(), roi.name + ".roi").getRoi()
            b, m = j.getBounds(), j.getMask()
            mask = np.asarray(m.getPixels()).reshape(m.getHeight(), m.getWidth()) != 0
            obj = lab == int(str(j.getProperty("id")))
            exact += np.array_equal(mask, obj[b.y:b.y + b.height, b.x:b.x + b.width]) and mask.sum() == obj.sum()
        print(exact, len(rois))
    """)
    mask_tif = Path(__file__).parent / "data" / "mask2d.tif"
    done = subprocess.run([sys.executable, "-c", script, str(mask_tif)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "DISPLAY": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    exact, total = map(int, done.stdout.split())
    assert exact == total == len(np.unique(stardist_mask)) - 1
