"""Volumes (issue 28): 3D objects from z-stacks, the channel to segment, per-object measurements, the outputs.

``volume=True`` must give micro-sam's own ``automatic_3d_segmentation`` (with micro-sam's APG generator and the
same model) object for object; re-tuning a volume must not encode again. Small on purpose: 4 slices of stardist's
img3d (61x57 px each; SAM encodes every plane at 1024 px, so a test's cost is its number of planes, and every test
after the first finds them in the embedding cache)."""
from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import tifffile

from microsam_fiji import segment, segment_with_scores
from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main
from microsam_fiji.core.embedding_cache import CACHE_BYTES_ENV, EmbeddingCache, ImageState
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.images import ChannelWarning
from microsam_fiji.core.progress import Cancelled, reporting
from microsam_fiji.core.tiff_io import Calibration, read_image
from microsam_fiji.engines.measurements import measure_labels, measure_objects
from microsam_fiji.rois.roiset import read_roiset

from helpers.instance_match import assert_same_instances

Z_CROP = slice(10, 14)
OPTIONS = {"gap_closing": 1, "min_z_extent": 2}
CAL = Calibration(pixel_width=0.5, pixel_height=0.5, pixel_depth=2.0, unit="µm")


@pytest.fixture(scope="module")
def volume(stardist_volume) -> np.ndarray:
    return stardist_volume[Z_CROP].copy()


@pytest.fixture(scope="module")
def ours(demo_model, volume):
    return segment_with_scores(volume, demo_model, volume=True)


@pytest.fixture(scope="module")
def micro_sam_3d(demo_model, volume, tmp_path_factory) -> dict[str, np.ndarray]:
    """micro-sam's ``automatic_3d_segmentation`` with its own APG generator on the same model (predictor and decoder
    objects, so the same backend), without and with the merge options. The function is micro-sam's per-slice APG
    followed by its public ``merge_instance_segmentation_3d``: the slices it hands that merge are recorded, and the
    merge with the options is micro-sam's same call on them (a second whole call would run the decoder on every
    slice again for the same slices)."""
    from micro_sam import multi_dimensional_segmentation as msd
    from micro_sam.instance_segmentation import get_instance_segmentation_generator

    generator = get_instance_segmentation_generator(demo_model.predictor, is_tiled=False, decoder=demo_model.decoder,
                                                    segmentation_mode="apg")
    merge, handed = msd.merge_instance_segmentation_3d, []

    def recording(segmentation, **kwargs):
        handed.append((segmentation.copy(), kwargs))
        return merge(segmentation, **kwargs)

    path = tmp_path_factory.mktemp("embeddings") / "volume.zarr"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(msd, "merge_instance_segmentation_3d", recording)
        plain = msd.automatic_3d_segmentation(volume, demo_model.predictor, generator, embedding_path=path,
                                              verbose=False)
    (slices, kwargs), = handed  # one merge, of one per-slice segmentation with objects
    assert slices.shape == volume.shape and slices.max() > 0 and kwargs["gap_closing"] is None
    options = merge(slices.copy(), **{**kwargs, **OPTIONS})
    return {"plain": plain, "options": options}


def z_extents(labels: np.ndarray) -> dict[int, int]:
    return {int(i): len(np.unique(np.nonzero(labels == i)[0])) for i in np.unique(labels[labels > 0])}


def test_volume_gives_micro_sams_3d_instances(ours, micro_sam_3d):
    reference = micro_sam_3d["plain"]
    assert max(z_extents(reference).values()) > 1  # objects merged across z: a 3D comparison, not a 2D one
    assert_same_instances(reference, ours.labels)  # same count (> 0), every object IoU >= 0.99 both ways
    assert ours.labels.dtype == np.uint32 and ours.axes == "ZYX" and ours.volume
    assert np.unique(ours.labels[ours.labels > 0]).tolist() == list(range(1, int(ours.labels.max()) + 1))


def test_gap_closing_and_min_z_extent_as_in_micro_sam_without_encoding(demo_model, volume, ours, micro_sam_3d):
    reference = micro_sam_3d["options"]
    assert len(z_extents(reference)) < len(z_extents(micro_sam_3d["plain"]))  # the options change the result
    assert min(z_extents(reference).values()) >= OPTIONS["min_z_extent"]
    misses = demo_model.cache.misses
    result = segment_with_scores(volume, demo_model, volume=True, **OPTIONS)
    assert demo_model.cache.misses == misses
    assert_same_instances(reference, result.labels)


def test_a_second_call_with_other_thresholds_encodes_nothing(demo_model, volume, ours):
    misses = demo_model.cache.misses
    other = segment_with_scores(volume, demo_model, volume=True, center=0.3, min_size=40)
    assert demo_model.cache.misses == misses  # every plane's embeddings and decoder maps came from the cache
    assert other.params["center_distance_threshold"] == 0.3 and not np.array_equal(other.labels, ours.labels)


def test_a_prompt_on_a_slice_after_a_3d_call_encodes_nothing(demo_model, volume, ours):
    """The 3D call cached every plane: a point on an object of slice 2 is answered from that plane's embeddings,
    and its mask lies on the object the 3D call found there."""
    from microsam_fiji.engines.prompted import PromptObject, segment_from_prompts

    plane = 2
    ids, counts = np.unique(ours.labels[plane][ours.labels[plane] > 0], return_counts=True)
    target = ids[np.argmax(counts)]  # the largest object on that slice
    ys, xs = np.nonzero(ours.labels[plane] == target)
    middle = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)  # a pixel of the object near its centre
    misses = demo_model.cache.misses
    got = segment_from_prompts(volume, demo_model, axes="ZYX", prompts=[PromptObject(
        points=np.array([[ys[middle], xs[middle]]]), labels=np.array([1]), plane=plane)])
    assert got.encoded == 0 and demo_model.cache.misses == misses
    mask = got.labels[plane] == 1
    overlap = np.logical_and(mask, ours.labels[plane] == target).sum()
    assert mask.any() and overlap / mask.sum() > 0.5, (overlap, mask.sum())


def test_the_embedding_cache_is_bounded_by_bytes(monkeypatch):
    def state(n_bytes: int) -> ImageState:
        maps = np.zeros(n_bytes // 12, np.float32)
        return ImageState(embeddings={"features": np.zeros(0, np.float32)}, foreground=maps, center_distances=maps,
                          boundary_distances=maps)

    cache = EmbeddingCache(max_bytes=2500)
    for key in "abc":
        cache.put(key, state(1200))
    assert len(cache) == 2 and cache.get("a") is None and cache.nbytes == 2400  # the oldest went
    cache.put("huge", state(6000))
    assert len(cache) == 1 and cache.get("huge") is not None  # the newest stays, even alone over the bound
    monkeypatch.setenv(CACHE_BYTES_ENV, "3")
    assert EmbeddingCache().max_bytes == 3 << 20
    monkeypatch.setenv(CACHE_BYTES_ENV, "lots")
    with pytest.raises(UserError, match=f"{CACHE_BYTES_ENV}='lots' is no size"):
        EmbeddingCache()
    monkeypatch.delenv(CACHE_BYTES_ENV)
    assert EmbeddingCache().max_bytes > 64 << 20  # a quarter of the free memory: a stack's planes, not 8 of them


def test_each_time_point_is_its_own_volume_with_ids_unique_across_time(demo_model, volume, ours):
    misses = demo_model.cache.misses
    result = segment_with_scores(np.stack([volume, volume]), demo_model, volume=True, axes="TZYX")
    assert demo_model.cache.misses == misses and result.axes == "TZYX"
    first, second = result.labels
    n = int(first.max())
    np.testing.assert_array_equal(first, ours.labels)
    np.testing.assert_array_equal(second, np.where(ours.labels > 0, ours.labels + n, 0))  # ids n+1..2n
    assert sorted(result.scores) == list(range(1, 2 * n + 1))
    # time as the second axis (two slices: fewer planes to run): still a volume per time point
    swapped = segment(np.stack([volume[:2], volume[:2]], axis=1), demo_model, volume=True, axes="ZTYX")
    first, second = swapped[:, 0], swapped[:, 1]
    assert first.max() > 0 and max(z_extents(first).values()) == 2
    np.testing.assert_array_equal(second, np.where(first > 0, first + first.max(), 0))


@pytest.mark.parametrize("image_axes, kwargs, message", [
    ("TYX", {}, r"has 4 time frames: objects are not tracked across time here \(micro-sam's tracking needs a "
                r"Trackastra model that is downloaded from the network"),
    ("YX", {}, "this image is one plane: segment it in 2D"),
    ("ZYX", {"gap_closing": -1}, "gap_closing=-1: give a number of slices"),
    ("ZYX", {"volume": False, "min_z_extent": 2}, "min_z_extent merges objects across z: it needs 3D segmentation"),
])
def test_what_3d_cannot_segment_is_refused_in_one_line_before_encoding(demo_model, volume, image_axes, kwargs,
                                                                       message):
    image = volume[0] if image_axes == "YX" else volume + 1  # new pixels: an encoding would be counted
    misses = demo_model.cache.misses
    with pytest.raises(UserError, match=message) as err:
        segment(image, demo_model, axes=image_axes, **{"volume": True, **kwargs})
    assert "\n" not in str(err.value) and demo_model.cache.misses == misses


def test_channel_2_is_segmented_as_that_channel_alone(demo_model, volume, ours):
    two = np.stack([volume[0], volume[1]])  # C, Y, X
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChannelWarning)  # a chosen channel is not warned about
        second = segment_with_scores(two, demo_model, axes="CYX", channel=2)
    alone = segment_with_scores(volume[1].copy(), demo_model)
    assert alone.labels.max() > 0 and second.channel == 2
    np.testing.assert_array_equal(second.labels, alone.labels)
    assert second.scores == alone.scores
    with pytest.warns(ChannelWarning, match=r"^the image has 2 channels: segmented channel 1 \(choose another"):
        first = segment(two, demo_model, axes="CYX")
    np.testing.assert_array_equal(first, segment(volume[0].copy(), demo_model))
    # a hyperstack (Z, C, Y, X) in 3D: channel 2 is the volume
    hyperstack = np.stack([volume[::-1], volume], axis=1)
    np.testing.assert_array_equal(segment(hyperstack, demo_model, axes="ZCYX", channel=2, volume=True), ours.labels)
    for channel in (0, 3):
        with pytest.raises(UserError, match=rf"^channel {channel} is out of range: the image has 2 channels \(valid: "
                                            r"1 to 2, 1-based as in ImageJ\)$"):
            segment(two, demo_model, axes="CYX", channel=channel)


def test_a_3d_objects_score_is_the_mean_of_its_2d_pieces(demo_model, volume, ours):
    pieces = segment_with_scores(volume, demo_model)  # plane by plane: the objects the merge started from
    ids = np.unique(ours.labels[ours.labels > 0]).tolist()
    assert sorted(ours.scores) == ids and len(pieces.scores) > len(ids)
    for i in ids:
        inside = np.unique(pieces.labels[ours.labels == i]).tolist()
        assert ours.scores[i] == pytest.approx(np.mean([pieces.scores[p] for p in inside if p]))


def test_measurements_agree_with_independent_counts(volume, ours):
    table = measure_objects(ours, volume, CAL)
    labels = ours.labels
    ids = np.unique(labels[labels > 0]).tolist()
    assert table.headings == ["id", "name", "voxels", "volume", "first_slice", "last_slice", "centroid_x",
                              "centroid_y", "centroid_z", "bbox_x", "bbox_y", "bbox_width", "bbox_height",
                              "mean_intensity", "score", "unit"]
    assert len(table) == len(ids) and table.columns["id"] == ids
    assert table.columns["name"] == [f"cell-{i:04d}" for i in ids]
    voxels = np.bincount(labels.ravel())[ids]
    assert table.columns["voxels"] == voxels.tolist()
    np.testing.assert_allclose(table.columns["volume"], voxels * 0.5 * 0.5 * 2.0)
    sums = np.bincount(labels.ravel(), weights=volume.ravel().astype(np.float64))[ids]
    np.testing.assert_allclose(table.columns["mean_intensity"], sums / voxels)
    for row, i in enumerate(ids):
        z, y, x = np.nonzero(labels == i)
        assert (table.columns["first_slice"][row], table.columns["last_slice"][row]) == (z.min() + 1, z.max() + 1)
        np.testing.assert_allclose([table.columns[f"centroid_{a}"][row] for a in "xyz"],
                                   [(x.mean() + 0.5) * 0.5, (y.mean() + 0.5) * 0.5, (z.mean() + 0.5) * 2.0])
        assert [table.columns[c][row] for c in ("bbox_x", "bbox_y", "bbox_width", "bbox_height")] == [
            x.min(), y.min(), x.max() - x.min() + 1, y.max() - y.min() + 1]
        assert table.columns["score"][row] == ours.scores[i]
    assert set(table.columns["unit"]) == {"µm"}
    rows = list(csv.DictReader(table.csv_text().splitlines()))
    assert len(rows) == len(ids) and float(rows[0]["volume"]) == table.columns["volume"][0]


def test_2d_objects_get_areas_and_their_slice():
    labels = np.zeros((2, 3, 5, 6), np.uint32)  # T, Z, Y, X: ids unique across the stack, as segment gives them
    labels[0, 1, 1:3, 1:4] = 1
    labels[1, 2, 0:5, 5] = 7
    table = measure_labels(labels, "TZYX", calibration=Calibration(0.25, 0.5, 3.0, "mm"))
    assert table.headings == ["id", "name", "frame", "pixels", "area", "slice", "centroid_x", "centroid_y", "bbox_x",
                              "bbox_y", "bbox_width", "bbox_height", "unit"]
    assert table.rows() == [
        [1, "cell-0001", 1, 6, 6 * 0.125, 2, 2.5 * 0.25, 2.0 * 0.5, 1, 1, 3, 2, "mm"],
        [7, "cell-0007", 2, 5, 5 * 0.125, 3, 5.5 * 0.25, 2.5 * 0.5, 5, 0, 1, 5, "mm"]]


def test_progress_names_each_plane_then_the_merge_and_a_cancel_leaves_the_cache_whole(demo_model, volume, ours):
    seen = []
    with reporting(lambda stage, k, n: seen.append((stage, k, n))):
        segment(volume, demo_model, volume=True)
    assert [(k, n) for stage, k, n in seen if stage == "segmenting planes"] == [(k, 4) for k in range(4)]
    assert seen[-1] == ("merging objects across z", 0, 1)

    def cancel_at(where):
        def reporter(stage, k, n):
            if where(stage, k):
                raise Cancelled()
        return reporter

    # between planes: the planes before are cached, nothing is half-written
    with reporting(cancel_at(lambda stage, k: stage == "segmenting planes" and k == 2)), pytest.raises(Cancelled):
        segment(volume, demo_model, volume=True)
    # inside a plane's encoder pass (new pixels): nothing enters the cache
    misses, held = demo_model.cache.misses, len(demo_model.cache)
    inside = []
    with reporting(cancel_at(lambda stage, k: inside.append(stage) or len(inside) == 3)), pytest.raises(Cancelled):
        segment(volume + 1, demo_model, volume=True)
    assert inside[:2] == ["segmenting planes", "encoding the image"]
    assert (demo_model.cache.misses, len(demo_model.cache)) == (misses, held)
    np.testing.assert_array_equal(segment(volume, demo_model, volume=True), ours.labels)
    assert demo_model.cache.misses == misses


def write_hyperstack(path, volume: np.ndarray) -> None:
    """An ImageJ hyperstack (Z, C, Y, X): channel 1 another image, channel 2 ``volume``; 0.5 µm pixels, 2 µm apart."""
    tifffile.imwrite(path, np.stack([volume[::-1], volume], axis=1), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZCYX", "unit": "micron", "spacing": 2.0})


def check_outputs(out, name: str, expected: np.ndarray) -> None:
    """The label image (voxel size kept), one ROI per object and slice named by object, a CSV row per object."""
    labels = read_image(out / f"{name}_labels.tif")
    np.testing.assert_array_equal(labels.data, expected)
    assert labels.axes == "ZYX" and labels.calibration == Calibration(0.5, 0.5, 2.0, "µm")
    rois = read_roiset(out / f"{name}_RoiSet.zip")
    pairs = {(int(i), z + 1) for z in range(len(expected)) for i in np.unique(expected[z]) if i}
    assert sorted((int(r.properties["id"]), r.position) for r in rois) == sorted(pairs)
    assert all(r.name == f"cell-{int(r.properties['id']):04d}" for r in rois)  # one name per object, every slice
    with open(out / f"{name}_objects.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    ids = np.unique(expected[expected > 0]).tolist()
    assert [int(r["id"]) for r in rows] == ids
    voxels = np.bincount(expected.ravel())[ids]
    assert [float(r["volume"]) for r in rows] == pytest.approx((voxels * 0.5).tolist())
    assert {r["unit"] for r in rows} == {"µm"}


def test_segment_many_writes_3d_labels_rois_and_objects(demo_model, volume, ours, tmp_path):
    write_hyperstack(tmp_path / "cells.tif", volume)
    misses = demo_model.cache.misses
    summary = segment_many(tmp_path / "cells.tif", tmp_path / "out", demo_model, volume=True, channel=2)
    assert [(r.status, r.objects) for r in summary.rows] == [("done", int(ours.labels.max()))]
    assert demo_model.cache.misses == misses
    check_outputs(tmp_path / "out", "cells", ours.labels)


def test_cli_3d_options_on_a_dask_worker(demo_model, volume, tmp_path, capsys):
    image = tmp_path / "cells.tif"
    write_hyperstack(image, volume[:2])
    for bad, message in ((["--gap-closing", "1"], "--gap-closing merges objects across z: it needs 3D"),
                         (["--3d", "--channel", "0"], "--channel 0: give a channel number")):
        assert main(["segment", str(image), "--out", str(tmp_path / "no"), *bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["segment", str(image), "--out", str(tmp_path / "out"), "--3d", "--min-z-extent", "2", "--channel",
                 "2", "--workers", "1", "--device", "cpu", "--quiet"]) == 0
    expected = segment(volume[:2], demo_model, volume=True, min_z_extent=2)
    assert expected.max() > 0
    check_outputs(tmp_path / "out", "cells", expected)


# --- in Fiji: the plugin in ImageJ started as a user starts it ------------------------------------------------------

def test_3d_and_channel_through_the_plugin(installed, volume, ours, demo_model, tmp_path):
    """``run("micro-sam APG", "3d ...")`` on a calibrated z-stack in ImageJ (install-fiji folder, ``java -jar``):
    one ROI per object and slice, named alike per object; the Results table "micro-sam objects" has a row per 3D
    object with calibrated volumes; the label image keeps the voxel size; another threshold encodes nothing. Then
    ``channel=2`` on a 2-channel hyperstack segments channel 2 as segmenting that channel alone does."""
    from helpers.imagej import printed, run_imagej, worker_log

    # the volume's first two slices: objects through both of them make it a 3D call, and each slice the worker
    # encodes costs a pass (their reference here finds both planes in the cache of `ours`)
    two_slices = volume[:2]
    reference = segment_with_scores(two_slices, demo_model, volume=True)
    stack = tmp_path / "nuclei3d.tif"
    tifffile.imwrite(stack, two_slices, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 2.0, "unit": "micron"})
    # channel 2 holds the same two slices, channel 1 other pixels (them turned by 180°): segmenting the wrong
    # channel gives other labels, and channel 2's planes are in both caches already (the worker's 3D call, `ours`
    # here), so the channel costs no pass of its own
    other = np.ascontiguousarray(two_slices[:, ::-1, ::-1])
    hyper = tmp_path / "two_channels.tif"
    tifffile.imwrite(hyper, np.stack([other, two_slices], axis=1), imagej=True, metadata={"axes": "ZCYX"})
    out = tmp_path / "out"
    out.mkdir()
    macro = f"""
open("{stack}");
run("micro-sam APG", "3d labels=[{out / 'labels3d.tif'}] rois=[{out / 'rois3d.zip'}]");
print("count=" + call("microsam_fiji.MicroSamAPG.lastResult", "count"));
print("encoded1=" + call("microsam_fiji.MicroSamAPG.lastResult", "encoded"));
print("rows=" + Table.size("micro-sam objects"));
print("volume0=" + Table.get("volume", 0, "micro-sam objects"));
print("voxels0=" + Table.get("voxels", 0, "micro-sam objects"));
print("unit=" + Table.getString("unit", 0, "micro-sam objects"));
run("micro-sam APG", "3d center=0.4 replace");
print("encoded2=" + call("microsam_fiji.MicroSamAPG.lastResult", "encoded"));
close("*");
open("{hyper}");
Stack.setChannel(2);
run("micro-sam APG", "stack replace labels=[{out / 'channel2.tif'}]");
"""
    done = run_imagej(installed, macro, tmp_path, timeout=600)
    values = printed(done.stdout)
    assert "encoded2" in values, f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    n = int(reference.labels.max())
    assert n > 0 and max(z_extents(reference.labels).values()) == 2  # objects through both slices: 3D objects
    assert int(values["count"]) == n and int(values["rows"]) == n  # objects counted in 3D
    rois = read_roiset(out / "rois3d.zip")
    by_name: dict[str, set[int]] = {}
    for roi in rois:
        by_name.setdefault(roi.name, set()).add(roi.position or roi.z_position)
    assert len(by_name) == n and max(len(z) for z in by_name.values()) > 1  # one name per object, on its slices
    assert float(values["volume0"]) == pytest.approx(float(values["voxels0"]) * 0.5 * 0.5 * 2.0)
    assert values["unit"] in ("µm", "micron")
    labels = read_image(out / "labels3d.tif")
    assert labels.calibration.pixel_width == pytest.approx(0.5) and labels.calibration.pixel_depth == 2.0
    assert values["encoded2"] == "0"  # the volume's planes were cached by the first call
    np.testing.assert_array_equal(labels.data, reference.labels)  # micro-sam's 3D objects, as in Python
    assert "segmented channel 2 of 2" in done.stdout + done.stderr  # the Log says which channel
    alone = segment_with_scores(two_slices, demo_model).labels
    np.testing.assert_array_equal(tifffile.imread(out / "channel2.tif"), alone)
    assert alone.max() > 0
