"""The macro command run("micro-sam APG", ...) in a real ImageJ 1.x, driven by ImageJ's macro interpreter.

Needs a display (the ROI Manager and ImageJ's command table): CI runs pytest under xvfb-run."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from helpers.bridge import macro, open_image, rois_as_labels, showing_dialogs, write_tiff

pytestmark = pytest.mark.timeout(300)


def test_command_puts_exact_rois_into_the_roi_manager(image_a, reference, rm, nuclei):
    count = macro(open_image(image_a) + 'run("micro-sam APG", ""); return "" + roiManager("count");')
    n = int(reference.labels.max())
    assert n >= 5 and int(count) == n == rm.getCount()
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), reference.labels)
    assert str(rm.getName(0)).startswith("cell-")
    assert showing_dialogs() == []


def test_options_in_fiji_style_reach_the_segmentation(image_a, model, rm, nuclei):
    from microsam_fiji.engines.segment import segment_with_scores

    options = ("model=[demo] mode=apg foreground=0.5 center=0.5 boundary=0.5 min_size=100 nms=0.9")
    macro(open_image(image_a) + f'run("micro-sam APG", "{options}");')
    expected = segment_with_scores(nuclei, model, "apg", min_size=100).labels
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), expected)

    rm.reset()
    macro(open_image(image_a) + 'run("micro-sam APG", "mode=ais center=0.4 min_size=30");')
    expected = segment_with_scores(nuclei, model, "ais", center=0.4, min_size=30).labels
    assert expected.max() > 0
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), expected)


def test_existing_rois_stay_unless_replace(image_a, reference, rm):
    n = int(reference.labels.max())
    # the rectangle stays the image's selection after roiManager("add"): removed, or APG would run inside it
    code = (open_image(image_a) + 'makeRectangle(3, 4, 20, 10); Roi.setName("mine"); roiManager("add"); '
            'run("Select None");')
    count = macro(code + 'run("micro-sam APG", ""); return "" + roiManager("count");')
    assert int(count) == n + 1 and str(rm.getName(0)) == "mine"
    count = macro(open_image(image_a) + 'run("micro-sam APG", "replace"); return "" + roiManager("count");')
    assert int(count) == n
    assert "mine" not in [str(rm.getName(i)) for i in range(rm.getCount())]


def test_rois_labels_and_show_options(image_a, reference, rm, tmp_path, nuclei):
    from microsam_fiji.core.tiff_io import read_image
    from microsam_fiji.rois.decode import rois_to_labels

    roiset, labels = tmp_path / "out dir" / "RoiSet.zip", tmp_path / "out dir" / "labels.tif"
    code = (open_image(image_a) + 'setVoxelSize(0.25, 0.25, 1, "micron");'
            f'run("micro-sam APG", "rois=[{roiset}] labels=[{labels}] show"); return getTitle() + " " + bitDepth();')
    assert macro(code) == "nuclei a.tif-labels 16"
    assert np.array_equal(rois_to_labels(roiset, nuclei.shape), reference.labels)
    written = read_image(labels)
    assert np.array_equal(written.data, reference.labels)
    assert written.calibration.pixel_width == pytest.approx(0.25) and written.calibration.unit == "µm"
    assert rm.getCount() == reference.labels.max()


def test_stack_flag_segments_slice_by_slice_with_roi_positions(nuclei, model, rm, tmp_path):
    from microsam_fiji.engines.segment import segment_with_scores

    stack = np.stack([nuclei, nuclei[::-1].copy() * 0])  # second slice empty: no objects, no encoder run
    path = write_tiff(tmp_path / "stack.tif", stack, "ZYX")
    count = macro(open_image(path) + 'run("micro-sam APG", "stack"); return "" + nSlices + " " + roiManager("count");')
    expected = segment_with_scores(stack, model).labels
    assert count == f"2 {int(expected.max())}"
    rois = rm.getRoisAsArray()
    assert {int(r.getPosition()) for r in rois} == {1}
    assert np.array_equal(rois_as_labels(rois, stack.shape), expected)


def test_model_and_embeddings_are_reused_across_calls(bridge, model, image_a, nuclei, rm, tmp_path):
    other = write_tiff(tmp_path / "other.tif", np.ascontiguousarray(nuclei[:, ::-1]))
    loads, misses = bridge.models.model_loads, model.cache.misses
    for path in (image_a, image_a, other, other, image_a):
        macro(open_image(path) + 'run("micro-sam APG", "model=[demo] min_size=40");')
    # the model fixture is the session's default demo model; the macros reuse it (other tests of this process
    # may have loaded other models into the same session before)
    assert bridge.models.model_loads == loads and bridge.models.models[bridge.models.model_key("demo")] is model
    assert model.cache.misses == misses + 1  # one encoder run for the one new image
    assert rm.getCount() > 0


ERRORS = [
    ('close("*"); run("micro-sam APG", "");', "micro-sam APG: no image is open: open or select the image"),
    ('run("micro-sam APG", "model=[/no/such/model.pt]");', "micro-sam APG: model file '/no/such/model.pt' not found"),
    ('run("micro-sam APG", "model=[no_such_model]");', "micro-sam APG: unknown model 'no_such_model'"),
    # offline: the fix inside a macro is a model=[path], not the CLI's --model
    ('run("micro-sam APG", "model=vit_b_lm");',
     "no network: cannot download micro-sam model 'vit_b_lm'; pass a local checkpoint or package instead (in a macro: "
     "model=[/path/to/model]"),
    ('run("micro-sam APG", "center=abc");', "micro-sam APG: parameter center_distance_threshold='abc' is not a number"),
    ('run("micro-sam APG", "center=1.5");', "out of range: use a value between 0 and 1"),
    ('run("micro-sam APG", "centre=0.4");', "micro-sam APG: unknown option 'centre'"),
    ('run("micro-sam APG", "mode=sam");', "micro-sam APG: unknown mode 'sam': use one of apg, ais"),
    ('run("micro-sam APG", "replace=yes");', "option 'replace' is a flag"),
    ('run("micro-sam APG", "tile=[big]");', "option tile: 'big' is not a pair of whole numbers"),
    ('run("micro-sam APG", "rois=[/tmp/rois.txt]");', "a ROI set is a .zip file: give a path ending in .zip"),
    ('run("micro-sam APG", "engine=test-oom");', "micro-sam APG: out of memory while segmenting"),
    ('run("micro-sam APG", "engine=test-cuda-oom");', "micro-sam APG: out of memory while segmenting"),
]


@pytest.fixture
def oom_engines(monkeypatch):
    from microsam_fiji.engines import registry

    def out_of_memory(*_):
        raise MemoryError()

    def cuda_out_of_memory(*_):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setitem(registry.ENGINE_IMPLS, "test-oom", out_of_memory)
    monkeypatch.setitem(registry.ENGINE_IMPLS, "test-cuda-oom", cuda_out_of_memory)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("code, message", ERRORS, ids=[m.split(": ")[-1][:30] for _, m in ERRORS])
def test_errors_stop_the_macro_with_one_message(code, message, bridge, model, image_a, rm, oom_engines):
    from microsam_fiji.imagej import MacroError

    loads = bridge.models.model_loads
    with pytest.raises(MacroError) as err:
        macro(open_image(image_a) + code + ' print("not stopped"); return "not stopped";')
    text = str(err.value)
    assert message in text and "\n" not in text and "Traceback" not in text and "Exception" not in text
    assert showing_dialogs() == []
    assert rm.getCount() == 0
    # the JVM, the session and the loaded model are still there for the next call
    assert int(macro(open_image(image_a) + 'run("micro-sam APG", "mode=ais"); return "" + roiManager("count");')) >= 0
    assert bridge.models.model_loads == loads


@pytest.mark.timeout(120)
def test_error_in_an_ordinary_macro_shows_imagej_macro_error_box(bridge, rm):
    """Run the way Fiji runs macros (no ignore-errors): ImageJ's own "Macro Error" box with our one line."""
    from jpype import JClass

    IJ = JClass("ij.IJ")
    finished = threading.Event()
    result = {}

    def run():
        result["value"] = IJ.runMacro('run("micro-sam APG", "centre=0.4"); print("not stopped");')
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    box = None
    deadline = time.time() + 60
    while box is None and time.time() < deadline:
        time.sleep(0.2)
        box = next((w for w in JClass("java.awt.Window").getWindows()
                    if w.isShowing() and str(getattr(w, "getTitle", lambda: "")()) == "Macro Error"), None)
    assert box is not None, f"no Macro Error box; windows: {showing_dialogs()}"
    field = box.getMessage().getClass().getDeclaredField("lines")
    field.setAccessible(True)
    text = "\n".join(str(s) for s in field.get(box.getMessage()))
    box.dispose()
    assert finished.wait(30)
    assert text.startswith("micro-sam APG: unknown option 'centre'")
    assert "Exception" not in text and "Traceback" not in text
    assert "Exception" not in showing_dialogs()


@pytest.mark.timeout(120)
def test_menu_click_asks_in_a_dialog_and_the_recorder_records_the_macro_line(nuclei, reference, rm):
    """Outside a macro (Plugins > micro-sam APG, IJ.run without options) the command asks with a dialog;
    with the Macro Recorder open, the call appears as a run("micro-sam APG", "...") line."""
    from jpype import JClass

    from microsam_fiji.imagej import to_imageplus

    Recorder = JClass("ij.plugin.frame.Recorder")
    recorder = Recorder()
    imp = to_imageplus(nuclei, title="clicked")
    finished = threading.Event()

    def click():
        JClass("ij.WindowManager").setTempCurrentImage(imp)
        JClass("ij.IJ").run("micro-sam APG")
        finished.set()

    try:
        threading.Thread(target=click, daemon=True).start()
        dialog, deadline = None, time.time() + 60
        while dialog is None and time.time() < deadline:
            time.sleep(0.2)
            dialog = next((w for w in JClass("java.awt.Window").getWindows()
                           if w.isShowing() and str(getattr(w, "getTitle", lambda: "")()) == "micro-sam APG"), None)
        assert dialog is not None
        dialog.actionPerformed(JClass("java.awt.event.ActionEvent")(dialog.getButtons()[0], 1001, "OK"))
        assert finished.wait(60)
        text = str(recorder.getText())
    finally:
        recorder.close()
    assert 'run("micro-sam APG", "mode=apg foreground=0.5 center=0.5 boundary=0.5 min_size=25 nms=0.9");' in text
    assert np.array_equal(rois_as_labels(rm.getRoisAsArray(), nuclei.shape), reference.labels)
