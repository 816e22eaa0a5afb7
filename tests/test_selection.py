"""``micro-sam APG`` honours the image's state as ImageJ's own commands do. An area selection
restricts the command to it (objects only inside, ROIs and labels in full-image coordinates); a stack is
segmented whole only with the ``stack`` flag, otherwise only its current plane (the ROIs on that plane).
Through :func:`~microsam_fiji.command.execute.execute` directly, in process (JPype) and through the real plugin
and ``segment_with_cli.ijm`` in a real ImageJ."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from roifile import ROI_TYPE, ImagejRoi

from microsam_fiji.rois.decode import rois_to_labels

pytestmark = pytest.mark.timeout(900)

LEFT, TOP, SIZE = 32, 32, 64  # the 64x64 selection


def stack_of(stardist_image) -> np.ndarray:
    """Two 128x128 planes of real nuclei, different on each plane."""
    return np.stack([stardist_image[128:256, 128:256], stardist_image[256:384, 256:384]])


def rect() -> ImagejRoi:
    return ImagejRoi(roitype=ROI_TYPE.RECT, left=LEFT, top=TOP, right=LEFT + SIZE, bottom=TOP + SIZE)


def crop_reference(plane: np.ndarray, demo_model) -> np.ndarray:
    """What a selection of the crop must give: the crop segmented, placed back into a zero image."""
    from microsam_fiji import segment

    out = np.zeros(plane.shape, np.uint32)
    out[TOP:TOP + SIZE, LEFT:LEFT + SIZE] = segment(plane[TOP:TOP + SIZE, LEFT:LEFT + SIZE], demo_model)
    return out


def inside(roi_bounds) -> bool:
    left, top, right, bottom = roi_bounds
    return left >= LEFT and top >= TOP and right <= LEFT + SIZE and bottom <= TOP + SIZE


def same_objects(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the ids' numbering."""
    from skimage.segmentation import relabel_sequential

    return np.array_equal(relabel_sequential(a)[0], relabel_sequential(b)[0])


# --- execute, the one implementation ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded(stardist_image):
    from microsam_fiji.core.tiff_io import Calibration, LoadedImage

    return LoadedImage(data=stack_of(stardist_image), axes="ZYX", calibration=Calibration())


@pytest.fixture(scope="module")
def cache(demo_model):
    from microsam_fiji.models.cache import ModelCache

    return ModelCache(default_model=demo_model)


def test_a_stack_without_the_stack_flag_segments_the_current_plane_only(loaded, cache, demo_model, tmp_path):
    from microsam_fiji import segment
    from microsam_fiji.command.execute import execute

    labels = tmp_path / "labels.tif"
    result = execute(f"labels=[{labels}]", loaded, cache, current_plane=1)
    expected = segment(loaded.data[1], demo_model)
    assert expected.max() > 3
    assert result.label_axes == "YX" and np.array_equal(result.labels, expected)
    assert np.array_equal(tifffile.imread(labels), expected)  # the labels output is that one plane
    assert {roi.position for roi in result.rois} == {2} and result.count == expected.max()
    full = execute("stack", loaded, cache, current_plane=1)
    assert full.label_axes == "ZYX" and np.array_equal(full.labels, segment(loaded.data, demo_model, axes="ZYX"))
    assert {roi.position for roi in full.rois} == {1, 2}
    preview = execute("stack", loaded, cache, current_plane=0, preview=True)  # a preview: the current plane only
    assert {roi.position for roi in preview.rois} == {1}


def test_a_rectangle_selection_segments_inside_it_in_full_image_coordinates(loaded, cache, demo_model):
    from microsam_fiji.command.execute import execute

    result = execute("", loaded, cache, selection=rect(), current_plane=1)
    # a leftover selection restricting the call is said (the Log), with its size
    assert any(w.startswith("restricted to the selection: ") for w in result.warnings), result.warnings
    expected = crop_reference(loaded.data[1], demo_model)
    assert expected.max() > 0
    assert result.labels.shape == (128, 128) and same_objects(result.labels, expected)
    assert not result.labels[:TOP].any() and not result.labels[:, :LEFT].any()
    assert all(inside((r.left, r.top, r.right, r.bottom)) for r in result.rois) and result.rois
    assert {r.position for r in result.rois} == {2}
    np.testing.assert_array_equal(rois_to_labels(result.rois, (2, 128, 128))[1], result.labels)
    both = execute("stack", loaded, cache, selection=rect())
    assert both.labels.shape == (2, 128, 128) and {r.position for r in both.rois} == {1, 2}
    assert same_objects(both.labels[0], crop_reference(loaded.data[0], demo_model))
    assert all(inside((r.left, r.top, r.right, r.bottom)) for r in both.rois)


def test_an_oval_or_mask_selection_keeps_only_the_objects_pixels_inside_and_points_are_ignored(loaded, cache):
    from microsam_fiji.command.execute import execute, selection_mask
    from microsam_fiji.core.errors import UserError

    oval = ImagejRoi(roitype=ROI_TYPE.OVAL, left=LEFT, top=TOP, right=LEFT + SIZE, bottom=TOP + SIZE, position=2)
    mask = selection_mask(oval, 128, 128)
    assert mask is not None and 0 < mask.sum() < SIZE * SIZE
    result = execute("min_size=10", loaded, cache, selection=oval, current_plane=0)
    assert result.labels.any() and not result.labels[~mask].any()
    sizes = np.bincount(result.labels.ravel())[1:]
    assert sizes.min() >= 10 and list(np.unique(result.labels)) == list(range(int(result.labels.max()) + 1))
    as_mask = execute("min_size=10", loaded, cache, selection=mask, current_plane=0)
    assert np.array_equal(as_mask.labels, result.labels)
    point = ImagejRoi(roitype=ROI_TYPE.POINT, left=40, top=40, right=41, bottom=41, n_coordinates=1,
                      integer_coordinates=np.array([[0, 0]], np.int32))
    assert np.array_equal(execute("", loaded, cache, selection=point).labels, execute("", loaded, cache).labels)
    with pytest.raises(UserError, match="covers no pixel"):
        execute("", loaded, cache, selection=ImagejRoi(roitype=ROI_TYPE.RECT, left=200, top=200, right=260,
                                                       bottom=260))


def test_the_stack_flag_is_an_option_of_the_grammar():
    from microsam_fiji.command.options import parse_options

    assert parse_options("stack replace").stack and not parse_options("replace").stack
    from microsam_fiji.core.errors import UserError

    with pytest.raises(UserError, match="is a flag"):
        parse_options("stack=1")


# --- in process (JPype) ---------------------------------------------------------------------------------------

def test_in_process_command_honours_selection_and_current_slice(bridge, stardist_image, tmp_path):
    from helpers.bridge import clean_roi_manager, macro, write_tiff

    path = write_tiff(tmp_path / "stack.tif", stack_of(stardist_image), "ZYX")
    rm = clean_roi_manager()
    select = f'open("{path}"); setSlice(2); makeRectangle({LEFT}, {TOP}, {SIZE}, {SIZE}); '
    macro(select + 'run("micro-sam APG", "replace");')
    rois = list(rm.getRoisAsArray())
    assert rois and {int(r.getPosition()) for r in rois} == {2}
    assert macro('return "" + selectionType() + " " + getSliceNumber();') == "0 2"  # both stay as they were
    for r in rois:
        b = r.getBounds()
        assert inside((b.x, b.y, b.x + b.width, b.y + b.height)), str(b)
    macro(select + 'run("micro-sam APG", "replace stack");')
    rois = list(rm.getRoisAsArray())
    assert {int(r.getPosition()) for r in rois} == {1, 2}
    for r in rois:
        b = r.getBounds()
        assert inside((b.x, b.y, b.x + b.width, b.y + b.height)), str(b)
    macro(f'open("{path}"); setSlice(1); run("Select None"); run("micro-sam APG", "replace");')
    rois = list(rm.getRoisAsArray())
    assert {int(r.getPosition()) for r in rois} == {1}
    assert any(not inside((r.getBounds().x, r.getBounds().y, r.getBounds().x + r.getBounds().width,
                           r.getBounds().y + r.getBounds().height)) for r in rois)


# --- the plugin and segment_with_cli.ijm in a real ImageJ -------------------------------------------------------

def test_plugin_and_cli_macro_honour_selection_and_current_slice(installed, stardist_image, tmp_path):
    from helpers.imagej import printed, run_imagej, worker_log

    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack_of(stardist_image), imagej=True, metadata={"axes": "ZYX"})
    script = Path(__file__).resolve().parents[1] / "fiji-scripts" / "segment_with_cli.ijm"
    cli = Path(sys.executable).with_name("microsam-fiji")
    select = f'setSlice(2); makeRectangle({LEFT}, {TOP}, {SIZE}, {SIZE});\n'
    macro = (f'open("{path}");\n{select}'
             f'run("micro-sam APG", "rois=[{tmp_path}/slice.zip] labels=[{tmp_path}/slice.tif]");\n'
             f'print("slice_now=" + getSliceNumber()); print("kept=" + selectionType());\n'
             f'{select}run("micro-sam APG", "stack rois=[{tmp_path}/stack.zip]");\n'
             f'{select}runMacro("{script}", "cli=[{cli}] rois=[{tmp_path}/cli.zip] labels=[{tmp_path}/cli.tif]");\n'
             'print("done=1");\n')
    done = run_imagej(installed, macro, tmp_path, timeout=600)
    values = printed(done.stdout)
    assert values.get("done") == "1", f"{done.stdout}\n{done.stderr}\n{worker_log(tmp_path)}"
    assert values["slice_now"] == "2" and values["kept"] == "0"  # the selection stays, the slice too
    from microsam_fiji.rois.roiset import read_roiset

    # (the CLI with `stack`: the same execute() as the plugin's, tested above; one program start saved)
    for name, positions in (("slice", {2}), ("stack", {1, 2}), ("cli", {2})):
        rois = read_roiset(tmp_path / f"{name}.zip")
        assert rois and {r.position for r in rois} == positions, (name, [r.position for r in rois])
        assert all(inside((r.left, r.top, r.right, r.bottom)) for r in rois), name
    for name in ("slice", "cli"):
        labels = tifffile.imread(tmp_path / f"{name}.tif")
        assert labels.shape == (128, 128) and labels.any() and not labels[:TOP].any(), name
    assert np.array_equal(tifffile.imread(tmp_path / "slice.tif"), tifffile.imread(tmp_path / "cli.tif"))



