"""``micro-sam Prompt`` and the micro-sam Prompt Tool of the ImageJ plugin, in an ImageJ started as a user starts
it (``java -jar ij.jar`` on a folder prepared by ``microsam-fiji install-fiji``, see :mod:`test_fiji_plugin`).

Every object is compared pixel for pixel with micro-sam's own prompt functions
(``micro_sam.prompt_based_segmentation.segment_from_points / segment_from_box / segment_from_mask``) run here on the
demo model's embeddings of the same image; prompts are placed on nuclei of stardist's ground truth."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers.imagej import (
    IJ_JAR,
    fresh_imagej_folder,
    printed,
    require_imagej,
    run_cli,
    run_imagej,
    run_watched,
    worker_log,
    xvfb_run,
)

LAST = "microsam_fiji.MicroSamAPG.lastResult"
COMMAND = "micro-sam Prompt"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """An ImageJ folder with the plugin, as ``microsam-fiji install-fiji`` installs it."""
    require_imagej(display=True)
    folder = fresh_imagej_folder(tmp_path_factory.mktemp("fiji"))
    run_cli("install-fiji", folder)
    return folder


# --- prompts on stardist's nuclei, and micro-sam's own answers -------------------------------------------------

def nuclei(mask: np.ndarray, n: int) -> list[dict]:
    """The ``n`` largest nuclei of a ground-truth crop that do not touch its border: a pixel of the nucleus near
    its centroid (x, y), its bounding box (x0, y0, x1, y1; max inclusive)."""
    found = []
    for label in np.unique(mask[mask > 0]):
        ys, xs = np.nonzero(mask == label)
        if ys.min() == 0 or xs.min() == 0 or ys.max() == mask.shape[0] - 1 or xs.max() == mask.shape[1] - 1:
            continue
        nearest = np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2)
        found.append({"label": int(label), "area": len(ys), "x": int(xs[nearest]), "y": int(ys[nearest]),
                      "box": (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))})
    return sorted(found, key=lambda d: -d["area"])[:n]


def plane_of(path: Path) -> np.ndarray:
    """The image as micro-sam-fiji hands it to micro-sam (one 2D plane)."""
    from microsam_fiji.core.images import to_planes
    from microsam_fiji.core.tiff_io import read_image

    loaded = read_image(path)
    return to_planes(loaded.data, loaded.axes).data[0]


class MicroSam:
    """micro-sam's prompt functions on the demo model's embeddings of one image (from micro-sam-fiji's cache)."""

    def __init__(self, demo_model, path: Path):
        from microsam_fiji.engines.state import image_state

        self.model = demo_model
        self.plane = plane_of(path)
        self.shape = self.plane.shape[:2]
        self.embeddings = image_state(demo_model, self.plane).embeddings

    def points(self, xy, labels=None) -> np.ndarray:
        from micro_sam.prompt_based_segmentation import segment_from_points

        points = np.array([(y, x) for x, y in xy], np.float64)  # micro-sam: (y, x)
        labels = np.ones(len(points), np.int64) if labels is None else np.asarray(labels, np.int64)
        return self._mask(segment_from_points(self.model.predictor, points, labels,
                                              image_embeddings=self.embeddings))

    def box(self, x, y, w, h) -> np.ndarray:
        """An ImageJ rectangle (x, y, width, height) as micro-sam's box (y0, x0, y1, x1), max exclusive."""
        from micro_sam.prompt_based_segmentation import segment_from_box

        return self._mask(segment_from_box(self.model.predictor, np.array([y, x, y + h, x + w], np.float64),
                                           image_embeddings=self.embeddings))

    def mask(self, mask: np.ndarray) -> np.ndarray:
        from micro_sam.prompt_based_segmentation import segment_from_mask

        return self._mask(segment_from_mask(self.model.predictor, mask, image_embeddings=self.embeddings))

    @staticmethod
    def _mask(masks) -> np.ndarray:
        masks = np.asarray(masks)
        return (masks[0] if masks.ndim == 3 else masks).astype(bool)


def assert_objects(rois_or_path, expected_masks: list[np.ndarray], first_id: int, shape) -> None:
    """The ROIs are ``cell-<first_id>`` ... in prompt order and fill exactly micro-sam's masks (a later object
    painted over an earlier one, as one call paints them)."""
    from microsam_fiji.rois.decode import rois_to_labels
    from microsam_fiji.rois.roiset import read_roiset

    rois = read_roiset(rois_or_path) if isinstance(rois_or_path, (str, Path)) else list(rois_or_path)
    expected = np.zeros(shape, np.uint32)
    for i, mask in enumerate(expected_masks):
        assert mask.any(), f"micro-sam found nothing for prompt {i + 1}: move the prompt onto a nucleus"
        expected[mask] = first_id + i
    assert [r.name for r in rois] == [f"cell-{first_id + i:04d}" for i in range(len(expected_masks))]
    np.testing.assert_array_equal(rois_to_labels(rois, shape), expected)


# --- the command in a -batch macro ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def prompt_images(tmp_path_factory, stardist_image, stardist_mask):
    """Two crops of the stardist image and the nuclei the prompts point at (from the ground truth)."""
    folder = tmp_path_factory.mktemp("prompt_images")
    a, b = folder / "a.tif", folder / "b.tif"
    tifffile.imwrite(a, stardist_image[:160, :160], imagej=True)
    tifffile.imwrite(b, stardist_image[352:512, 352:512], imagej=True)
    return a, b, nuclei(stardist_mask[:160, :160], 8), nuclei(stardist_mask[352:512, 352:512], 1)


def negative_multipoint(path: Path, positive, negative) -> Path:
    """A multi-point selection as ImageJ's Multi-point tool saves it when the second point was placed with
    counter 1 (ImageJ 1.53t macros cannot set counters: the macro opens this file as the selection)."""
    from roifile import ROI_TYPE, ImagejRoi

    roi = ImagejRoi.frompoints(np.array([positive, negative], np.float64))
    roi.roitype = ROI_TYPE.POINT
    roi.counters = np.array([0, 1], np.uint8)
    roi.name = "multi-point"
    roi.tofile(path)
    return path


BAD = {  # a macro of its own each (runMacro): the error stops it, the next one runs
    "none": ('run("Select None");', "no selection"),
    "line": ("makeLine(10, 10, 60, 40);", "is a line, not a prompt"),
    "outside": ("makePoint(170, 20);", "lies outside the 160x160 image"),
    "option": ('makePoint(20, 20); options = "bogus=1";', "unknown option 'bogus'"),
    "manager": ('run("Select None"); options = "prompts=roi-manager";', "ROI Manager"),
}


@pytest.fixture(scope="module")
def prompt_run(plugin, prompt_images, tmp_path_factory):
    """One ImageJ -batch session on image a: bad prompts first (nothing may reach the ROI Manager), then (a) a point,
    (a2) a multi-point of two positive points, (b) a multi-point with a negative point, (c) a rectangle, (d) a
    freehand selection, (e) a point and a rectangle in the ROI Manager (prompts=roi-manager); then on image b
    micro-sam APG and a point: the prompt reuses APG's embeddings."""
    a, b, on_a, on_b = prompt_images
    tmp = tmp_path_factory.mktemp("prompt")
    n = on_a
    negative = negative_multipoint(tmp / "negative.roi", (n[2]["x"], n[2]["y"]), (n[3]["x"], n[3]["y"]))
    x0, y0, x1, y1 = n[4]["box"]
    box = (x0 - 2, y0 - 2, x1 - x0 + 5, y1 - y0 + 5)
    x0, y0, x1, y1 = n[5]["box"]
    cx, cy, radius = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) / 2 + 3
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    fx = ", ".join(str(round(cx + radius * np.cos(t))) for t in angles)
    fy = ", ".join(str(round(cy + radius * np.sin(t))) for t in angles)
    x0, y0, x1, y1 = n[7]["box"]
    manager_box = (x0 - 2, y0 - 2, x1 - x0 + 5, y1 - y0 + 5)
    for name, (selection, _) in BAD.items():
        options = "" if "options =" in selection else 'options = "prompts=selection";'
        (tmp / f"bad_{name}.ijm").write_text(f'{selection} {options}\nrun("{COMMAND}", options);\n'
                                             f'print("after_bad_{name}=1");\n')
    bad = "".join(f'runMacro("{tmp}/bad_{name}.ijm"); print("bad_{name}_count=" + roiManager("count"));\n'
                  for name in BAD)
    macro = f"""
open("{a}");
id = getImageID();
{bad}
selectImage(id);
makePoint({n[0]["x"]}, {n[0]["y"]});
run("{COMMAND}", "prompts=selection rois=[{tmp}/point.zip]");
print("point_count=" + roiManager("count")); print("point_encoded=" + call("{LAST}", "encoded"));
print("point_command=" + replace(call("{LAST}", "command"), " ", "_"));
makeSelection("point", newArray({n[1]["x"]}, {n[6]["x"]}), newArray({n[1]["y"]}, {n[6]["y"]}));
run("{COMMAND}", "rois=[{tmp}/points.zip]");
print("points_count=" + roiManager("count")); print("points_encoded=" + call("{LAST}", "encoded"));
open("{negative}");
print("negative_selection=" + selectionType());
run("{COMMAND}", "rois=[{tmp}/negative.zip]");
print("negative_count=" + roiManager("count"));
makeRectangle({", ".join(map(str, box))});
run("{COMMAND}", "rois=[{tmp}/box.zip]");
print("box_count=" + roiManager("count"));
makeSelection("freehand", newArray({fx}), newArray({fy}));
saveAs("Selection", "{tmp}/freehand.roi");
run("Create Mask"); saveAs("Tiff", "{tmp}/freehand_mask.tif"); close();
selectImage(id);
run("{COMMAND}", "rois=[{tmp}/freehand.zip]");
print("freehand_count=" + roiManager("count"));
run("Select None");
makePoint({n[3]["x"]}, {n[3]["y"]}); roiManager("add");
makeRectangle({", ".join(map(str, manager_box))}); roiManager("add");
run("Select None");
run("{COMMAND}", "prompts=roi-manager rois=[{tmp}/manager_prompts.zip]");
print("manager_count=" + roiManager("count"));
roiManager("save", "{tmp}/manager_a.zip");
open("{b}");
run("micro-sam APG", "replace");
print("apg_count=" + roiManager("count")); print("apg_encoded=" + call("{LAST}", "encoded"));
print("apg_command=" + replace(call("{LAST}", "command"), " ", "_"));
roiManager("save", "{tmp}/manager_apg.zip");
makePoint({on_b[0]["x"]}, {on_b[0]["y"]});
run("{COMMAND}", "rois=[{tmp}/after_apg.zip]");
print("after_apg_count=" + roiManager("count")); print("after_apg_encoded=" + call("{LAST}", "encoded"));
print("done=1");
"""
    done = run_imagej(plugin, macro, tmp)
    values = printed(done.stdout)
    assert values.get("done") == "1", f"macro did not finish: {done.stdout}\n{done.stderr}\n{worker_log(tmp)}"
    return tmp, values, done, {"box": box, "manager_box": manager_box}


def test_bad_prompts_give_one_line_each_and_add_nothing(prompt_run):
    _, values, done, _ = prompt_run
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"{COMMAND}:")]
    assert len(lines) == len(BAD), done.stderr
    for line, (name, (_, expected)) in zip(lines, BAD.items()):
        assert expected in line, (name, line)
        assert values[f"bad_{name}_count"] == "0"  # nothing reached the ROI Manager
        assert f"after_bad_{name}" not in values  # the error stopped that macro
    assert "Traceback" not in done.stderr and "Exception" not in done.stderr


def test_point_and_multipoint_prompts_equal_micro_sam(prompt_run, prompt_images, demo_model):
    tmp, values, _, _ = prompt_run
    a, _, n, _ = prompt_images
    sam = MicroSam(demo_model, a)
    assert values["point_encoded"] == "1" and values["point_command"] == "micro-sam_Prompt"
    assert_objects(tmp / "point.zip", [sam.points([(n[0]["x"], n[0]["y"])])], 1, sam.shape)
    assert values["point_count"] == "1"
    # two positive points: two objects, on the embeddings the first prompt cached
    assert values["points_encoded"] == "0"
    assert_objects(tmp / "points.zip", [sam.points([(n[1]["x"], n[1]["y"])]), sam.points([(n[6]["x"], n[6]["y"])])],
                   2, sam.shape)
    assert values["points_count"] == "3"


def test_negative_point_prompt_equals_micro_sam(prompt_run, prompt_images, demo_model):
    tmp, values, _, _ = prompt_run
    a, _, n, _ = prompt_images
    sam = MicroSam(demo_model, a)
    assert values["negative_selection"] == "10"  # a point selection (the opened multi-point)
    expected = sam.points([(n[2]["x"], n[2]["y"]), (n[3]["x"], n[3]["y"])], labels=[1, 0])
    assert_objects(tmp / "negative.zip", [expected], 4, sam.shape)  # one object: positive and negative point
    assert values["negative_count"] == "4"


def test_box_and_freehand_prompts_equal_micro_sam(prompt_run, prompt_images, demo_model):
    from microsam_fiji.rois.decode import rois_to_labels

    tmp, values, _, shapes = prompt_run
    a, _, _, _ = prompt_images
    sam = MicroSam(demo_model, a)
    assert_objects(tmp / "box.zip", [sam.box(*shapes["box"])], 5, sam.shape)
    assert values["box_count"] == "5"
    filled = tifffile.imread(tmp / "freehand_mask.tif") > 0  # ImageJ's own fill of the freehand selection
    np.testing.assert_array_equal(rois_to_labels(tmp / "freehand.roi", sam.shape) > 0, filled)
    assert_objects(tmp / "freehand.zip", [sam.mask(filled)], 6, sam.shape)
    assert values["freehand_count"] == "6"


def test_roi_manager_prompts_skip_its_objects_and_continue_its_ids(prompt_run, prompt_images, demo_model):
    from microsam_fiji.rois.roiset import read_roiset

    tmp, values, _, shapes = prompt_run
    a, _, n, _ = prompt_images
    sam = MicroSam(demo_model, a)
    # the ROI Manager held objects 1-6 (not prompts), a point and a rectangle: boxes first, then points
    expected = [sam.box(*shapes["manager_box"]), sam.points([(n[3]["x"], n[3]["y"])])]
    assert_objects(tmp / "manager_prompts.zip", expected, 7, sam.shape)
    manager = read_roiset(tmp / "manager_a.zip")
    assert values["manager_count"] == "10" and len(manager) == 10
    assert [r.name for r in manager if r.name.startswith("cell-")] == [f"cell-{i:04d}" for i in range(1, 9)]
    assert_objects([r for r in manager if r.name.startswith("cell-")][:1], [sam.points([(n[0]["x"], n[0]["y"])])],
                   1, sam.shape)


def test_prompt_after_apg_reuses_its_embeddings_and_ids_follow_apg(prompt_run, prompt_images, demo_model):
    from microsam_fiji.rois.roiset import read_roiset

    tmp, values, _, _ = prompt_run
    _, b, _, on_b = prompt_images
    assert values["apg_encoded"] == "1" and values["apg_command"] == "micro-sam_APG"
    assert values["after_apg_encoded"] == "0"  # the image encoder ran once for both commands
    apg = read_roiset(tmp / "manager_apg.zip")
    last_id = max(int(r.name.split("-")[1]) for r in apg)
    assert int(values["after_apg_count"]) == int(values["apg_count"]) + 1 == len(apg) + 1
    sam = MicroSam(demo_model, b)
    assert_objects(tmp / "after_apg.zip", [sam.points([(on_b[0]["x"], on_b[0]["y"])])], last_id + 1, sam.shape)


# --- the toolbar tool, with ImageJ's main window -------------------------------------------------------------

def test_prompt_tool_click_shift_click_drag_and_menu_command_recorded(plugin, prompt_images, tmp_path, demo_model):
    """Plugins › Segmentation › micro-sam Prompt Tool on the toolbar; synthetic mouse events on the image's canvas
    (zoomed 200 %): a click adds an object, a shift-click adds a negative point and replaces that object's ROI, a
    drag adds a box's object and a shift-click inside the box refines it (box and points); the command from the
    menu is recorded as run("micro-sam Prompt"), the tool's click and box as the macro that repeats them."""
    from micro_sam.prompt_based_segmentation import segment_from_box_and_points

    from microsam_fiji.rois.roiset import read_roiset

    a, _, n, _ = prompt_images
    harness = tmp_path / "harness"
    harness.mkdir()
    subprocess.run(["javac", "--release", "8", "-Xlint:-options", "-nowarn", "-cp", str(IJ_JAR), "-d",
                    str(harness), str(Path(__file__).parent / "java" / "PromptToolHarness.java")], check=True)
    click, negative, menu = (n[0]["x"], n[0]["y"]), (n[3]["x"], n[3]["y"]), (n[1]["x"], n[1]["y"])
    x0, y0, x1, y1 = n[4]["box"]
    drag = (x0 - 2, y0 - 2, x1 + 3, y1 + 3)
    in_box = (x0 - 1, y0 - 1)  # a corner of the box, beside the nucleus
    out = tmp_path / "out"
    out.mkdir()
    cmd = [*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp_path}",
           f"-Dplugins.dir={plugin}", "-cp", f"{IJ_JAR}{os.pathsep}{harness}", "PromptToolHarness", str(a),
           str(out), *map(str, (*click, *negative, *drag, *in_box, *menu))]
    done = run_watched(cmd, 500, env=dict(os.environ, HOME=str(tmp_path)))  # fresh ImageJ preferences
    values = printed(done.stdout)
    assert done.returncode == 0 and "count_menu" in values, f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    assert values["tool"] == "micro-sam_Prompt_Tool"
    status = re.compile(r"micro-sam:_cell-(\d{4})_(added|updated)_\(\d+(\.\d+)?_s\)")
    steps = ("click", "negative", "box", "box_negative")
    reported = {step: status.fullmatch(values[f"status_{step}"]) for step in steps}
    assert all(reported.values()), values
    assert {step: m.group(1, 2) for step, m in reported.items()} == {
        "click": ("0001", "added"), "negative": ("0001", "updated"), "box": ("0002", "added"),
        "box_negative": ("0002", "updated")}
    assert values["selection_counters"] == "[0,1]"  # the prompt shown: the negative point in counter 1
    counts = [values[f"count_{step}"] for step in ("click", "negative", "box", "box_negative", "menu")]
    assert counts == ["1", "1", "2", "2", "3"]  # a shift-click replaces its object's ROI
    sam = MicroSam(demo_model, a)
    assert_objects(out / "click.zip", [sam.points([click])], 1, sam.shape)
    x, y, x2, y2 = drag
    assert_objects(read_roiset(out / "box.zip")[1:], [sam.box(x, y, x2 - x, y2 - y)], 2, sam.shape)
    rois = read_roiset(out / "all.zip")
    assert_objects(rois[:1], [sam.points([click, negative], labels=[1, 0])], 1, sam.shape)
    refined = segment_from_box_and_points(demo_model.predictor, np.array([y, x, y2, x2], np.float64),
                                          np.array([in_box[::-1]], np.float64), np.array([0]),
                                          image_embeddings=sam.embeddings)
    assert_objects(rois[1:2], [MicroSam._mask(refined)], 2, sam.shape)
    assert_objects(rois[2:], [sam.points([menu])], 3, sam.shape)
    recorded = (out / "recorder.txt").read_text()
    assert f'makePoint({click[0]}, {click[1]});\nrun("{COMMAND}");' in recorded, recorded  # the tool's click
    assert f'makeRectangle({x}, {y}, {x2 - x}, {y2 - y});\nrun("{COMMAND}");' in recorded, recorded
    assert recorded.rstrip().endswith(f'(macros cannot set counters)\nrun("{COMMAND}");'), recorded  # the menu's
