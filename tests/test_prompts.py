"""Promptable segmentation: our prompts give micro-sam's own prompt functions' masks, on the embeddings APG
cached; ImageJ selections become the right prompts; bad prompts give one line; the CLI and the in-process
``micro-sam Prompt`` command."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import roifile
import tifffile
from roifile import ROI_TYPE, ImagejRoi

import microsam_fiji
from microsam_fiji import UserError, segment_from_prompts
from microsam_fiji.command.prompt_rois import prompts_from_rois
from microsam_fiji.engines.prompted import PromptObject, objects_from_arrays
from microsam_fiji.engines.state import image_state
from microsam_fiji.rois.decode import rois_to_labels
from microsam_fiji.rois.naming import next_id

from helpers.bridge import macro, open_image, rois_as_labels, showing_dialogs, write_tiff

POINT, NEGATIVE_POINT = (97, 116), (103, 125)
BOX = (60, 170, 110, 225)  # y0, x0, y1, x1 (max exclusive)


@pytest.fixture(scope="module")
def crop(stardist_image):
    return stardist_image[:256, :256].copy()


@pytest.fixture(scope="module")
def embeddings(crop, demo_model):
    return image_state(demo_model, crop, decoder=False).embeddings  # what prompts need


def micro_sams(function, demo_model, embeddings, *args):
    from micro_sam import prompt_based_segmentation as pbs

    return getattr(pbs, function)(demo_model.predictor, *args, image_embeddings=embeddings)[0].astype(bool)


def test_points_boxes_and_masks_equal_micro_sams_prompt_functions(crop, demo_model, embeddings):
    disc = np.zeros(crop.shape, bool)
    disc[np.hypot(*np.ogrid[-97:159, -116:140]) < 8] = True  # a rough mask around the point's nucleus
    prompts = [
        PromptObject(points=np.array([POINT], float), labels=np.array([1])),
        PromptObject(points=np.array([POINT, NEGATIVE_POINT], float), labels=np.array([1, 0])),
        PromptObject(box=np.array(BOX, float)),
        PromptObject(box=np.array(BOX, float), points=np.array([[85, 200]], float), labels=np.array([1])),
        PromptObject(mask=disc)]
    expected = [
        micro_sams("segment_from_points", demo_model, embeddings, np.array([POINT]), np.array([1])),
        micro_sams("segment_from_points", demo_model, embeddings, np.array([POINT, NEGATIVE_POINT]), np.array([1, 0])),
        micro_sams("segment_from_box", demo_model, embeddings, np.array(BOX)),
        micro_sams("segment_from_box_and_points", demo_model, embeddings, np.array(BOX), np.array([[85, 200]]),
                   np.array([1])),
        micro_sams("segment_from_mask", demo_model, embeddings, disc)]
    for prompt, mask in zip(prompts, expected):
        assert mask.sum() > 20, prompt.kind  # each reference is a real object
        result = segment_from_prompts(crop, demo_model, prompts=[prompt])
        assert result.encoded == 0  # the fixture's embeddings: nothing encoded again
        np.testing.assert_array_equal(result.labels == 1, mask, err_msg=prompt.kind)
        assert 0 < result.scores[1] <= 1.5
    # several objects in one call: in prompt order, a later object painted over an earlier one
    together = segment_from_prompts(crop, demo_model, prompts=[prompts[0], prompts[2], prompts[4]]).labels
    painted = np.zeros(crop.shape, np.uint32)
    for label, mask in enumerate([expected[0], expected[2], expected[4]], start=1):
        painted[mask] = label
    np.testing.assert_array_equal(together, painted)


def test_a_prompt_runs_the_image_encoder_alone_and_apg_after_it_adds_the_decoder_maps(stardist_image, demo_model):
    """A first prompt on an image waits for the encoder, not for the instance decoder it does not use; APG on the
    same image then runs the decoder on the cached embeddings (no second encoder run) and gets the maps that
    encoder and decoder give together."""
    from microsam_fiji.core.embedding_cache import image_key
    from microsam_fiji.core.progress import reporting
    from microsam_fiji.engines.state import compute_state

    image = stardist_image[256:384, 384:512].copy()  # a plane no other test encodes
    stages: list[str] = []
    with reporting(lambda stage, *_: stages.append(stage)):
        prompt = segment_from_prompts(image, demo_model, points=[[64, 64]])
    assert prompt.encoded == 1 and "encoding the image" in stages and "instance decoder" not in stages, stages
    state = demo_model.cache.get(image_key(image, None, None))
    assert state is not None and not state.has_maps and state.nbytes > 0
    held, misses = demo_model.cache.nbytes, demo_model.cache.misses
    stages.clear()
    with reporting(lambda stage, *_: stages.append(stage)):
        apg = microsam_fiji.segment_with_scores(image, demo_model)
    assert demo_model.cache.misses == misses and "encoding the image" not in stages, stages  # no second encoding
    assert "instance decoder" in stages and state.has_maps and demo_model.cache.nbytes > held  # the maps counted
    assert apg.labels.max() > 0
    together = compute_state(demo_model, image)  # encoder and decoder in one go, as before a prompt
    for lazy, direct in zip(state.maps, together.maps):
        np.testing.assert_array_equal(lazy, direct)


def test_after_apg_the_first_prompt_encodes_nothing(stardist_image, demo_model):
    image = stardist_image[256:512, 256:512].copy()
    microsam_fiji.segment(image, demo_model)
    result = segment_from_prompts(image, demo_model, points=[[60, 60]])
    assert result.encoded == 0 and result.labels.max() == 1


def test_tiled_embeddings_serve_prompts(crop, demo_model):
    from micro_sam import util

    tile, halo = (128, 128), (32, 32)
    result = segment_from_prompts(crop, demo_model, points=[POINT], tile_shape=tile, halo=halo)
    tiled = util.precompute_image_embeddings(demo_model.predictor, crop, ndim=2, tile_shape=tile, halo=halo,
                                             verbose=False)
    expected = micro_sams("segment_from_points", demo_model, tiled, np.array([POINT]), np.array([1]))
    assert expected.sum() > 20
    np.testing.assert_array_equal(result.labels == 1, expected)


def test_arrays_group_points_into_objects():
    objs = objects_from_arrays(points=[[5, 5], [50, 50], [52, 52]], point_labels=[1, 1, 0])
    assert len(objs) == 1 and objs[0].labels.tolist() == [1, 1, 0]  # negatives: one object
    objs = objects_from_arrays(points=[[5, 5], [50, 50]])
    assert [o.kind for o in objs] == ["points", "points"]
    objs = objects_from_arrays(points=[[5, 5], [50, 50]], boxes=[[0, 0, 10, 10]])
    assert [o.kind for o in objs] == ["box+points", "points"] and objs[0].points.tolist() == [[5, 5]]
    objs = objects_from_arrays(points=[[5, 5], [6, 6], [50, 50]], objects=[1, 1, 2])
    assert [len(o.points) for o in objs] == [2, 1]


def point_roi(points_xy, counters=None, position=0) -> ImagejRoi:
    roi = ImagejRoi.frompoints(np.asarray(points_xy, float))
    roi.roitype = ROI_TYPE.POINT
    if counters is not None:
        roi.counters = np.asarray(counters, np.uint8)
    roi.position = position
    return roi


def test_imagej_selections_become_prompts():
    shape = (64, 80)
    rect = ImagejRoi(roitype=ROI_TYPE.RECT, top=10, left=20, bottom=30, right=50)
    poly = ImagejRoi.frompoints(np.array([[5, 40], [25, 40], [25, 60], [5, 60]], float))
    poly.roitype = ROI_TYPE.POLYGON
    objs = prompts_from_rois([point_roi([[30, 20]]), point_roi([[1, 1], [3, 3], [4, 4]], [0, 1, 0]), rect, poly,
                              point_roi([[70, 50]])], shape)
    kinds = [o.kind for o in objs]
    assert kinds == ["box+points", "points", "points", "mask"], kinds
    assert objs[0].points.tolist() == [[20, 30]]  # (y, x): the point inside the rectangle refines it
    assert objs[1].labels.tolist() == [1, 0, 1]  # counter 1 is the negative point
    np.testing.assert_array_equal(objs[3].mask, rois_to_labels([poly], shape) > 0)


@pytest.mark.parametrize("rois, message", [
    ([], "no prompt"),
    ([ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=1, x2=9, y2=9)], "is a line"),
    ([point_roi([[5, 5]], position=3)], "slice 3"),
])
def test_bad_selections_give_one_line(rois, message):
    with pytest.raises(UserError, match=message) as err:
        prompts_from_rois(rois, (32, 32))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"points": [[500, 5]]}, "outside"),
    ({"boxes": [[5, 5, 5, 20]]}, "zero area"),
    ({"points": [[5, 5]], "point_labels": [0]}, "only negative"),
    ({}, "no prompts"),
])
def test_bad_prompts_give_one_line(crop, demo_model, kwargs, message):
    with pytest.raises(UserError, match=message):
        segment_from_prompts(crop, demo_model, **kwargs)


def test_ids_continue_after_our_objects():
    ours = ImagejRoi(roitype=ROI_TYPE.RECT, top=0, left=0, bottom=2, right=2, name="cell-0007")
    ours.properties = {"id": 7, "area": 4}
    assert next_id([ours, point_roi([[1, 1]])]) == 8 and next_id([]) == 1


def test_cli_prompt_from_a_roiset_and_a_csv(tmp_path, crop, demo_model, embeddings):
    from microsam_fiji.cli import main

    image = tmp_path / "crop.tif"
    tifffile.imwrite(image, crop, imagej=True)
    roifile.roiwrite(tmp_path / "prompts.zip", [point_roi([POINT[::-1]])])
    (tmp_path / "points.csv").write_text(f"y,x,label\n{POINT[0]},{POINT[1]},1\n")
    expected = micro_sams("segment_from_points", demo_model, embeddings, np.array([POINT]), np.array([1]))
    for prompts in ("prompts.zip", "points.csv"):
        out = tmp_path / prompts.split(".")[0]
        assert main(["prompt", str(image), "--prompts", str(tmp_path / prompts), "--out", str(out),
                     "--device", "cpu"]) == 0
        np.testing.assert_array_equal(tifffile.imread(out / "crop_labels.tif") == 1, expected)
        np.testing.assert_array_equal(rois_to_labels(out / "crop_RoiSet.zip", crop.shape) == 1, expected)


def test_prompt_command_in_process(bridge, rm, crop, demo_model, embeddings, tmp_path):
    from microsam_fiji.imagej import MacroError

    bridge.models.set_default_model(demo_model)
    image = write_tiff(tmp_path / "crop.tif", crop)
    macro(open_image(image) + 'run("micro-sam APG", "");')
    apg = rm.getCount()
    assert apg > 0
    y, x = POINT
    macro(f'makePoint({x}, {y}); run("micro-sam Prompt", "prompts=selection");')
    assert rm.getCount() == apg + 1
    new = rm.getRoi(apg)
    assert str(new.getName()) == f"cell-{apg + 1:04d}"  # after the APG objects: names stay unique
    expected = micro_sams("segment_from_points", demo_model, embeddings, np.array([POINT]), np.array([1]))
    np.testing.assert_array_equal(rois_as_labels([new], crop.shape) > 0, expected)
    x0, y0, x1, y1 = BOX[1], BOX[0], BOX[3], BOX[2]
    macro(f'makeRectangle({x0}, {y0}, {x1 - x0}, {y1 - y0}); run("micro-sam Prompt", "");')
    expected = micro_sams("segment_from_box", demo_model, embeddings, np.array(BOX))
    np.testing.assert_array_equal(rois_as_labels([rm.getRoi(apg + 1)], crop.shape) > 0, expected)
    for code, message in (('run("Select None");', "no selection"), ("makeLine(1, 1, 30, 30);", "is a line")):
        with pytest.raises(MacroError, match=message) as err:
            macro(code + ' run("micro-sam Prompt", "");')
        assert str(err.value).startswith("micro-sam Prompt: ") and "\n" not in str(err.value)
    assert rm.getCount() == apg + 2 and showing_dialogs() == []


def test_a_prompt_corrects_the_last_apg_call_on_its_embeddings(stardist_image, demo_model):
    """No model= / tile= on the prompt: the last APG call's model and tiling, so nothing is encoded again."""
    from microsam_fiji.command.execute import execute
    from microsam_fiji.command.prompt import execute_prompt
    from microsam_fiji.core.tiff_io import Calibration, LoadedImage
    from microsam_fiji.models.cache import ModelCache

    image = LoadedImage(data=stardist_image[:192, 256:448].copy(), axes="YX", calibration=Calibration())
    models = ModelCache(default_model=demo_model)
    apg = execute("tile=[96,192] halo=[16,16]", image, models)  # two tiles
    assert apg.encoded == 1 and apg.count > 0
    prompt = execute_prompt("", image, [point_roi([[60, 60]])], apg.rois, models)
    assert prompt.encoded == 0 and prompt.count == 1
    assert prompt.rois[0].name == f"cell-{apg.count + 1:04d}"  # after APG's objects
    with pytest.raises(UserError, match="the ROI Manager is empty"):
        execute_prompt("prompts=roi-manager", image, [], [], models)


def test_propagate_through_a_z_stack_equals_micro_sams_segment_mask_in_volume(stardist_image, demo_model, monkeypatch,
                                                                            tmp_path):
    from micro_sam import prompt_based_segmentation as pbs
    from micro_sam import util
    from micro_sam.multi_dimensional_segmentation import segment_mask_in_volume

    from microsam_fiji.engines.prompted import PROPAGATION

    # the demo model's masks of one nucleus on neighbouring slices overlap less than the annotator's IoU 0.5 (0.3
    # on identical slices), so it would stop at once: here no threshold, to see it go through the stack
    monkeypatch.setitem(PROPAGATION, "iou_threshold", 0.0)
    # the largest ground-truth nucleus (stardist's mask2d.tif), moving 2 px per slice through 4 slices
    truth = tifffile.imread(Path(__file__).parent / "data" / "mask2d.tif")
    ids, areas = np.unique(truth[80:-80, 80:-80], return_counts=True)
    cy, cx = (int(c) for c in np.argwhere(truth == ids[1:][np.argmax(areas[1:])]).mean(axis=0))
    stack = np.stack([stardist_image[cy - 64 + 2 * z:cy + 64 + 2 * z, cx - 64:cx + 64] for z in range(4)])
    point, plane = np.array([[62.0, 64.0]]), 1  # its centre on slice 1
    result = segment_from_prompts(stack, demo_model, axes="ZYX", propagate_objects=True,
                                  prompts=[PromptObject(points=point, labels=np.array([1]), plane=plane)])
    volume = util.precompute_image_embeddings(demo_model.predictor, stack, ndim=3, verbose=False)
    seg = np.zeros(stack.shape, np.uint32)
    seg[plane] = pbs.segment_from_points(demo_model.predictor, point, np.array([1]), image_embeddings=volume,
                                         i=plane)[0]
    expected, _ = segment_mask_in_volume(seg, demo_model.predictor, volume, np.array([plane]), stop_lower=False,
                                         stop_upper=False, **PROPAGATION)
    expected = np.asarray(expected) > 0
    assert expected[plane].sum() > 20 and all(expected[z].any() for z in range(4))  # it went through the stack
    np.testing.assert_array_equal(result.labels == 1, expected)
    with pytest.raises(UserError, match="propagate needs a z"):
        segment_from_prompts(stack[0], demo_model, points=[[60, 60]], propagate_objects=True)

    # through the command: one object, one ROI per slice, all with the object's name and their slice's position
    from microsam_fiji.command.prompt import execute_prompt
    from microsam_fiji.core.tiff_io import Calibration, LoadedImage
    from microsam_fiji.models.cache import ModelCache

    loaded = LoadedImage(data=stack, axes="ZYX", calibration=Calibration())
    command = execute_prompt("propagate", loaded,
                             [point_roi([point[0][::-1]], position=plane + 1)], [],
                             ModelCache(default_model=demo_model), current_plane=plane)
    assert sorted((r.name, r.position) for r in command.rois) == [("cell-0001", z + 1) for z in range(4)]
    np.testing.assert_array_equal(rois_to_labels(command.rois, stack.shape) > 0, expected)
    # the Log says how far it went and why it stops there
    assert "cell-0001: propagated from slice 2 through slices 1-4 of 4" in " ".join(command.warnings)
    # a RoiSet of it: every member a name of its own, the object whole again in labels and in a RoiSet of those
    import zipfile

    from microsam_fiji.rois.roiset import read_roiset, write_rois, write_roiset

    roiset = write_rois(tmp_path / "propagated_RoiSet.zip", command.rois)
    names = zipfile.ZipFile(roiset).namelist()
    assert len(names) == len(set(names)) == 4
    back = rois_to_labels(read_roiset(roiset), stack.shape)
    np.testing.assert_array_equal(back > 0, expected)
    again = read_roiset(write_roiset(tmp_path / "again_RoiSet.zip", back, slice_suffix=False))
    assert sorted((r.name, r.position) for r in again) == [("cell-0001", z + 1) for z in range(4)]
