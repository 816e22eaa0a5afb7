"""The bridge's Python API (segment_imageplus, to_roi_manager) in process, and headless in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from helpers.bridge import nuclei_crop, rois_as_labels, write_tiff
from helpers.imagej import require_imagej

pytestmark = pytest.mark.timeout(300)


def test_to_roi_manager_adds_exact_rois_and_keeps_existing_ones(reference, rm, nuclei):
    from jpype import JClass

    from microsam_fiji.imagej import to_roi_manager

    rm.addRoi(JClass("ij.gui.Roi")(1, 2, 3, 4))
    scores = {i: i / 100 for i in range(1, int(reference.labels.max()) + 1)}
    assert to_roi_manager(reference.labels, scores=scores).equals(rm)  # default: the open ROI Manager
    n = int(reference.labels.max())
    assert rm.getCount() == n + 1
    rois = list(rm.getRoisAsArray())[1:]
    assert np.array_equal(rois_as_labels(rois, nuclei.shape), reference.labels)
    assert float(str(rois[2].getProperty("score"))) == pytest.approx(3 / 100)
    to_roi_manager(reference.labels, rm=rm)  # a second call: its names continue the first's
    names = [str(rm.getName(i)) for i in range(rm.getCount())]
    assert len(set(names)) == len(names) == 2 * n + 1 and names[-1] == f"cell-{2 * n:04d}", names
    to_roi_manager(reference.labels, rm=rm, replace=True, name_prefix="nucleus")
    assert rm.getCount() == n and str(rm.getName(0)).startswith("nucleus-")


def test_segment_imageplus_returns_java_rois(bridge, model, reference, nuclei):
    from microsam_fiji.imagej import segment_imageplus, to_imageplus

    imp = to_imageplus(nuclei, title="nuclei")
    rois = segment_imageplus(imp)  # the session's default model
    assert len(rois) == reference.labels.max()
    assert np.array_equal(rois_as_labels(rois, nuclei.shape), reference.labels)
    fewer = segment_imageplus(imp, model, min_size=100)
    assert 0 < len(fewer) < len(rois)


def test_segment_imageplus_refuses_nothing_clearly():
    from microsam_fiji.core.errors import UserError
    from microsam_fiji.imagej import segment_imageplus

    with pytest.raises(UserError, match="no image"):
        segment_imageplus(None)


HEADLESS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from jpype import JClass
    from microsam_fiji import segment
    from microsam_fiji.imagej import segment_imageplus, session
    from microsam_fiji.imagej.api import java_rois_to_roifile
    from microsam_fiji.rois.decode import rois_to_labels
    from microsam_fiji.rois.roiset import write_roiset
    from microsam_fiji.imagej.imageplus import from_imageplus

    session.start(headless=True)
    assert JClass("java.awt.GraphicsEnvironment").isHeadless()
    imp = JClass("ij.IJ").openImage(sys.argv[1])
    rois = segment_imageplus(imp, center=0.5)
    data = from_imageplus(imp).data
    expected = segment(data, session.current().models.model())
    labels = rois_to_labels(java_rois_to_roifile(rois), data.shape)
    assert np.array_equal(labels, expected), "ROIs differ from the labels"
    write_roiset(sys.argv[2], expected)
    assert np.array_equal(rois_to_labels(sys.argv[2], data.shape), expected)
    print("OK", len(rois))
""")


@pytest.mark.timeout(400)
def test_python_api_works_with_headless_java(tmp_path, stardist_image):
    """segment_imageplus and RoiSet writing need no display: run them where Java is headless."""
    image = write_tiff(tmp_path / "nuclei.tif", nuclei_crop(stardist_image))
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = subprocess.run([sys.executable, "-c", HEADLESS_SCRIPT, image, str(tmp_path / "RoiSet.zip")],
                          capture_output=True, text=True, env=env, timeout=380)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[0] == "OK" and int(done.stdout.split()[1]) >= 5


def test_fiji_command_with_a_missing_jar_is_one_line_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "microsam_fiji.imagej", "--ij", str(tmp_path / "ij.jar")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"microsam-fiji: error: ImageJ jar '{tmp_path / 'ij.jar'}' not "
                                                "found: pass the path of ij.jar"]


FIJI_DIR = os.environ.get("MICROSAM_FIJI_DIR")


@pytest.mark.skipif(not FIJI_DIR, reason="needs a local Fiji.app (set MICROSAM_FIJI_DIR): pyimagej cannot fetch "
                                         "Fiji's jars without network here")
@pytest.mark.timeout(600)
def test_fiji_session_runs_the_macro_command(tmp_path, stardist_image):
    image = write_tiff(tmp_path / "nuclei.tif", nuclei_crop(stardist_image))
    script = textwrap.dedent(f"""
        from microsam_fiji.imagej import run_macro, session
        session.start(fiji={FIJI_DIR!r}, mode="interactive")
        print(run_macro('open("{image}"); run("micro-sam APG", ""); return "" + roiManager("count");'))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 0


GUI_SCRIPT = textwrap.dedent("""
    import threading
    from jpype import JClass
    from microsam_fiji.imagej import run_macro, session

    s = session.start(gui=True)                       # what `microsam-fiji fiji` does for plain ImageJ
    IJ = JClass("ij.IJ")
    assert IJ.getInstance() is not None
    assert str(JClass("ij.Menus").getCommands().get("micro-sam APG")) != "None"   # Plugins > micro-sam APG
    waiter = threading.Thread(target=session.wait_until_closed, args=(s, 0.1), daemon=True)
    waiter.start()
    print(run_macro('newImage("x", "8-bit black", 64, 64, 1); run("micro-sam APG", "mode=ais");'
                    'return "" + roiManager("count");'))
    assert waiter.is_alive()
    IJ.getInstance().quit()
    waiter.join(20)
    print("closed" if not waiter.is_alive() else "still waiting")
""")


@pytest.mark.timeout(200)
def test_imagej_window_session_has_the_menu_item_and_ends_when_closed():
    require_imagej(display=True)  # fails under CI=true, names xvfb-run
    done = subprocess.run([sys.executable, "-c", GUI_SCRIPT], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["0", "closed"]
