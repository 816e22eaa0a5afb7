"""labels <-> ImageJ ROIs in pure Python: exact round trips on hard shapes, real nuclei, stacks; the CLI."""
from __future__ import annotations

import warnings
import zipfile

import numpy as np
import pytest
import roifile
import tifffile

from microsam_fiji.cli import main
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.tiff_io import Calibration, read_image, write_labels
from microsam_fiji.rois.decode import rois_to_labels
from microsam_fiji.rois.encode import labels_to_rois
from microsam_fiji.rois.roiset import read_roiset, write_roiset

from helpers.shapes import hard_shapes, random_blobs, random_labels


def round_trip(lab: np.ndarray) -> np.ndarray:
    return rois_to_labels(labels_to_rois(lab), lab.shape)


def test_hard_shapes_round_trip_exactly():
    lab, composite = hard_shapes()
    rois = labels_to_rois(lab)
    assert len(rois) == len(np.unique(lab)) - 1
    kinds = {int(r.name.split("-")[1]): r for r in rois}
    for label, roi in kinds.items():
        if label in composite:
            assert roi.composite and roi.roitype == roifile.ROI_TYPE.RECT, label
        else:
            assert roi.roitype == roifile.ROI_TYPE.TRACED and not roi.composite, label
    np.testing.assert_array_equal(rois_to_labels(rois, lab.shape), lab)


@pytest.mark.parametrize("seed", range(6))
def test_random_labels_round_trip_exactly(seed):
    lab = random_labels(seed)
    np.testing.assert_array_equal(round_trip(lab), lab)


@pytest.mark.parametrize("seed", range(3))
def test_random_blobs_round_trip_exactly(seed):
    lab = random_blobs(seed)
    rois = labels_to_rois(lab)
    assert any(r.composite for r in rois) and any(not r.composite for r in rois)
    np.testing.assert_array_equal(rois_to_labels(rois, lab.shape), lab)


def test_stardist_mask_round_trip_through_file(stardist_mask, tmp_path):
    path = write_roiset(tmp_path / "RoiSet.zip", stardist_mask)
    rois = read_roiset(path)
    assert len(rois) == len(np.unique(stardist_mask)) - 1
    np.testing.assert_array_equal(rois_to_labels(path, stardist_mask.shape), stardist_mask)


def test_names_properties_and_bounds():
    lab, _ = hard_shapes()
    rois = labels_to_rois(lab, scores={3: 0.875, 70000: 0.5}, name_prefix="nuc")
    names = [r.name for r in rois]
    assert names == sorted(names) and len(set(names)) == len(names)
    assert names[0] == "nuc-00001" and names[-1] == "nuc-70000"  # width of the largest id (5 > 4)
    for roi in rois:
        label = roi.properties["id"]
        assert roi.name == f"nuc-{label:05d}"
        assert roi.properties["area"] == np.count_nonzero(lab == label)
        ys, xs = np.nonzero(lab == label)
        assert (roi.left, roi.top, roi.right, roi.bottom) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    by_id = {r.properties["id"]: r.properties for r in rois}
    assert by_id[3]["score"] == 0.875 and "score" not in by_id[4]
    assert labels_to_rois(np.zeros((2, 3, 4), np.uint8)) == []
    assert labels_to_rois(np.array([[0, 5]]))[0].name == "cell-0005"


def test_stack_positions_names_and_round_trip():
    planes = np.stack([random_labels(s, shape=(20, 24)) for s in range(3)])
    planes[1][planes[1] > 0] += 10  # ids 11-16 occur on slice 2 only ...
    planes[2] = 0
    planes[2, 3:6, 3:6] = 20        # ... id 20 only on slice 3
    rois = labels_to_rois(planes)
    # ids 1-6 occur on slice 1 only, so names carry no slice; positions are 1-based
    assert {(r.name, r.position) for r in rois if r.properties["id"] in (1, 11, 20)} == {
        ("cell-0001", 1), ("cell-0011", 2), ("cell-0020", 3)}
    np.testing.assert_array_equal(rois_to_labels(rois, planes.shape), planes)

    same_ids = np.stack([random_labels(7, shape=(20, 24))] * 2)
    rois = labels_to_rois(same_ids)
    assert {r.name for r in rois if r.properties["id"] == 2} == {"cell-0002-z1", "cell-0002-z2"}
    np.testing.assert_array_equal(rois_to_labels(rois, same_ids.shape), same_ids)
    one_object = labels_to_rois(same_ids, slice_suffix=False)  # an object through the stack: one name
    assert {(r.name, r.position) for r in one_object if r.properties["id"] == 2} == {("cell-0002", 1),
                                                                                     ("cell-0002", 2)}
    np.testing.assert_array_equal(rois_to_labels(one_object, same_ids.shape), same_ids)

    hyper = np.stack([planes, planes])  # (T, Z, Y, X): stack index = t * Z + z + 1
    rois = labels_to_rois(hyper)
    assert max(r.position for r in rois) == 6
    np.testing.assert_array_equal(rois_to_labels(rois, hyper.shape), hyper)
    # hyperstack (c, z, t) positions as ImageJ's ROI Manager sets them
    rois = labels_to_rois(planes, positions=[(1, 1, 1), (1, 1, 2), (1, 1, 3)])
    assert rois[0].position == 0 and rois[-1].t_position == 3
    np.testing.assert_array_equal(rois_to_labels(rois, planes.shape, axes="T"), planes)


def test_rois_to_labels_ids_order_overlap_and_types():
    rect = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, left=2, top=1, right=6, bottom=4, name="a")
    poly = roifile.ImagejRoi.frompoints(np.array([[0, 0], [4, 0], [4, 2], [0, 2]]), name="b")
    out = rois_to_labels([rect, poly], (6, 8))
    expected = np.zeros((6, 8), np.uint32)
    expected[1:4, 2:6] = 1
    expected[0:2, 0:4] = 2  # the later ROI wins where they overlap
    np.testing.assert_array_equal(out, expected)
    oval = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.OVAL, left=0, top=0, right=5, bottom=5)
    disk = rois_to_labels([oval], (5, 5))
    assert disk[2].all() and disk[:, 2].all() and not disk[0, 0] and disk.sum() == 21
    line = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.LINE, name="l1")
    with pytest.raises(UserError, match="'l1' is a line"):
        rois_to_labels([line], (5, 5))
    curved = np.array([0, 0, 0, 3, 1, 0, 2, 2, 0, 3, 3, 4], np.float32)  # MOVETO, CUBICTO, CLOSE
    composite = roifile.ImagejRoi(roitype=roifile.ROI_TYPE.RECT, shape_roi_size=curved.size,
                                  multi_coordinates=curved, name="c1")
    with pytest.raises(UserError, match="'c1' has curved"):
        rois_to_labels([composite], (5, 5))
    on_slice = labels_to_rois(np.array([[[0]], [[3]]]))
    with pytest.raises(UserError, match="slice 2"):
        rois_to_labels(on_slice, (1, 1))
    assert rois_to_labels(on_slice, (2, 1, 1))[1, 0, 0] == 3


def test_bad_labels_and_paths(tmp_path):
    with pytest.raises(UserError, match="non-integer"):
        labels_to_rois(np.array([[0.5, 1.0]]))
    with pytest.raises(UserError, match="negative"):
        labels_to_rois(np.array([[-1, 1]]))
    with pytest.raises(UserError, match="2D image"):
        labels_to_rois(np.zeros(5, np.uint8))
    with pytest.raises(UserError, match=r"\.zip"):
        write_roiset(tmp_path / "rois.roi", np.ones((2, 2), np.uint8))
    with pytest.raises(UserError, match="not found"):
        read_roiset(tmp_path / "missing.zip")
    (tmp_path / "bad.zip").write_text("not a zip")
    with pytest.raises(UserError, match="not an ImageJ ROI file"):
        rois_to_labels(tmp_path / "bad.zip", (4, 4))


def test_write_roiset_replaces_and_handles_empty(tmp_path):
    path = tmp_path / "RoiSet.zip"
    many = np.arange(1, 10, dtype=np.uint16).reshape(3, 3)
    write_roiset(path, many)
    write_roiset(path, np.pad(np.ones((2, 2), np.uint8), 1))  # roifile alone would append to the old zip
    assert [r.name for r in read_roiset(path)] == ["cell-0001"]
    write_roiset(path, np.zeros((4, 4), np.uint8))
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == [] and zf.testzip() is None
    assert read_roiset(path) == []
    assert [p.name for p in tmp_path.iterdir()] == ["RoiSet.zip"]  # no temporary files left


# ---- CLI ----

def test_cli_rois_and_labels_keep_pixels_and_calibration(stardist_mask, tmp_path, capsys):
    labels_tif = tmp_path / "mask_labels.tif"
    write_labels(labels_tif, stardist_mask, Calibration(0.25, 0.25, None, "µm"))
    assert main(["rois", str(labels_tif), "--prefix", "nuc"]) == 0
    roiset = tmp_path / "mask_labels_RoiSet.zip"
    assert f"125 ROIs -> {roiset}" in capsys.readouterr().out
    assert read_roiset(roiset)[0].name == "nuc-0001"

    out = tmp_path / "back.tif"
    assert main(["labels", str(roiset), "--like", str(labels_tif), "--out", str(out)]) == 0
    back = read_image(out)
    np.testing.assert_array_equal(back.data, stardist_mask)
    assert back.calibration.pixel_width == pytest.approx(0.25) and back.calibration.unit == "µm"

    assert main(["labels", str(roiset), "--shape", "512,512"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "mask_labels_RoiSet_labels.tif"), stardist_mask)


def test_cli_stack_round_trip(tmp_path):
    stack = np.stack([random_labels(s, shape=(16, 20)) + 10 * s * (random_labels(s, shape=(16, 20)) > 0)
                      for s in range(3)])
    path = tmp_path / "stack.tif"
    write_labels(path, stack, Calibration(1.0, 1.0, 2.0, "µm"), axes="ZYX")
    assert main(["rois", str(path), "--out", str(tmp_path / "s.zip")]) == 0
    assert main(["labels", str(tmp_path / "s.zip"), "--like", str(path), "--out", str(tmp_path / "b.tif")]) == 0
    back = read_image(tmp_path / "b.tif")
    np.testing.assert_array_equal(back.data, stack)
    assert back.axes == "ZYX" and back.calibration.pixel_depth == 2.0


@pytest.mark.parametrize("argv, message", [
    (["labels", "{roiset}"], "one of the arguments --like --shape is required"),
    (["labels", "{roiset}", "--shape", "5"], "is not a shape"),
    (["labels", "{roiset}", "--shape", "4,4", "--out", "{tmp}/x.png"], "give a path ending in .tif"),
    (["labels", "{labels}", "--shape", "4,4"], "holds no ImageJ ROIs"),
    (["rois", "{tmp}/missing.tif"], "not found"),
    (["rois", "{labels}", "--out", "{tmp}/x.txt"], "give a path ending in .zip"),
    (["rois", "{rgb}"], "3 channels"),
])
def test_cli_errors_are_one_line(argv, message, tmp_path, capsys):
    labels = tmp_path / "l.tif"
    write_labels(labels, np.eye(4, dtype=np.uint8))
    roiset = write_roiset(tmp_path / "r.zip", np.eye(4, dtype=np.uint8))
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((4, 4, 3), np.uint8), photometric="rgb")
    argv = [a.format(roiset=roiset, labels=labels, tmp=tmp_path, rgb=rgb) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse errors
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_labels_warn_about_rois_beyond_the_image_and_a_roiset_skips_what_is_no_roi(tmp_path):
    """A smaller --shape than the ROIs' image cuts or drops ROIs (a warning says so); a RoiSet.zip with
    a README.txt inside is read as ImageJ reads it (the README skipped, with a warning)."""
    from microsam_fiji.rois.decode import RoisOutsideWarning
    from microsam_fiji.rois.roiset import SkippedEntriesWarning

    labels = np.zeros((60, 60), np.uint16)
    labels[5:10, 5:10], labels[20:40, 20:40], labels[50:58, 50:58] = 1, 2, 3
    path = write_roiset(tmp_path / "RoiSet.zip", labels)
    with pytest.warns(RoisOutsideWarning, match="1 ROI.*outside the 30x45 label image and 1 reach beyond"):
        cut = rois_to_labels(path, (30, 45))
    assert set(np.unique(cut)) == {0, 1, 2} and (cut == 2).sum() == 10 * 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the full size: no warning
        np.testing.assert_array_equal(rois_to_labels(path, labels.shape), labels)

    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("README.txt", "drawn by hand")
    with pytest.warns(SkippedEntriesWarning, match=r"README\.txt"):
        assert len(read_roiset(path)) == 3
    assert main(["labels", str(path), "--shape", "60,60", "--out", str(tmp_path / "l.tif")]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "l.tif"), labels)


def test_a_later_calls_names_continue_the_roi_managers_numbering():
    from microsam_fiji.rois.naming import NAME, continued_names, top_number

    existing = ["keep-me", "cell-0001", "cell-0002", "cell-0003-z002", "nucleus-0040"]
    assert continued_names(existing, ["cell-0001", "cell-0002-z001", "cell-0002-z002", "odd name"]) == \
        ["cell-0004", "cell-0005-z001", "cell-0005-z002", "odd name"]
    assert continued_names(existing, ["cell-0004", "cell-0005"]) == ["cell-0004", "cell-0005"]  # none taken
    # past the padding the number grows a digit
    assert continued_names(["cell-0001", "cell-9999"], ["cell-0001"]) == ["cell-10000"]
    assert continued_names(["nucleus-0040", "nucleus-0001"], ["nucleus-0001"]) == ["nucleus-0041"]
    assert top_number(existing) == 3 and top_number(existing, "nucleus") == 40 and top_number([]) == 0
    assert NAME.match("cell-0042-z003")["number"] == "0042"


def test_a_prompts_first_id_follows_names_a_later_apg_call_continued():
    from roifile import ImagejRoi

    from microsam_fiji.rois.naming import next_id

    rois = []
    for name, ident in (("cell-0001", 1), ("cell-0002", 2), ("cell-0003", 1)):  # a second call's id 1 → cell-0003
        roi = ImagejRoi.frompoints([[1, 1], [5, 1], [5, 5]])
        roi.name = name
        roi.properties = {"id": ident, "area": 8}
        rois.append(roi)
    assert next_id(rois) == 4


def test_roi_properties_say_the_area_in_pixels_and_calibrated_where_the_image_is():
    """``area`` is always pixels; a calibrated image adds ``calibrated_area`` and its ``area_unit`` (what ImageJ's
    Measure reports: 147.75 µm² for 591 pixels of 0.5 x 0.5 µm)."""
    from microsam_fiji.core.tiff_io import Calibration

    lab = np.zeros((40, 40), np.uint16)
    lab[2:25, 3:28] = 7  # 23 x 25 = 575 pixels
    plain = labels_to_rois(lab)[0].properties
    assert plain["area"] == 575 and "calibrated_area" not in plain
    roi = labels_to_rois(lab, calibration=Calibration(pixel_width=0.5, pixel_height=0.5, unit="µm"))[0]
    assert roi.properties["area"] == 575
    assert roi.properties["calibrated_area"] == pytest.approx(143.75) and roi.properties["area_unit"] == "µm²"


def test_a_roiset_of_one_object_on_several_slices_has_a_member_per_slice():
    """ImageJ's ROI Manager makes member names unique when it saves; so do we (unzip and readers by name lose the
    rest otherwise), and the labels rebuild the object on every slice."""
    from microsam_fiji.rois.roiset import member_names

    lab = np.zeros((4, 20, 20), np.uint16)
    lab[:, 5:10, 5:10] = 7
    rois = labels_to_rois(lab, slice_suffix=False)
    assert [r.name for r in rois] == ["cell-0007"] * 4
    assert member_names(rois) == ["cell-0007", "cell-0007-z002", "cell-0007-z003", "cell-0007-z004"]
