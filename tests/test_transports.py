"""One command, three transports: the same option strings through the in-process command (JPype), the plugin
(``java -jar ij.jar`` on an ``install-fiji`` folder, ``-batch``) and ``segment_with_cli.ijm`` (the CLI) give the
same labels, the same ROIs (written and in the ROI Manager), the same ``show`` and the same one-line errors."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from helpers.bridge import macro, open_image
from helpers.imagej import IJ_JAR, fresh_imagej_folder, run_cli, run_watched, xvfb_run

pytestmark = pytest.mark.timeout(1500)

CLI = Path(sys.executable).with_name("microsam-fiji")
TRANSPORTS = ("in-process", "plugin", "segment_with_cli")
# {out}: the transport's own output folder; {model}: the demo checkpoint under a path with nested brackets. "full"
# tiles the 128 x 128 image as one tile (micro-sam's tiled path; each tile costs a pass in each transport, and how
# several tiles join is tested in test_parity / test_backends)
CASES = {
    "full": "rois=[{out}/full/rois.zip] labels=[{out}/full/labels.tif] show engine=micro-sam tile=[128,128] "
            "halo=[16,0] center=0.4",
    "nested": "model=[{model}] labels=[{out}/nested/labels.tif] rois=[{out}/nested/rois.zip] min_size=30",
}
ERRORS = ("bogus=1", "model=[/nonexistent/[old] m.pt]", "rois=[{out}/rois.txt]", "tile=[a,b]", "center=2")
# segment_with_cli.ijm starts the program for each call (seconds each): one error of the option grammar and one
# of the model stage carry its path; all five are one Python function's (macro/execute.py) in every transport
CLI_ERRORS = (0, 1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, stardist_image):
    root = tmp_path_factory.mktemp("transports")
    image = root / "nuclei.tif"
    tifffile.imwrite(image, stardist_image[384:512, 0:128], imagej=True)
    from microsam_fiji.models.demo import DEMO_CHECKPOINT

    model = root / "[old] set" / "demo.pt"
    model.parent.mkdir()
    shutil.copy(DEMO_CHECKPOINT, model)
    return root, image, model


def _options(template: str, out: Path, model: Path) -> str:
    return template.format(out=out, model=model)


def _case_macro(image: Path, call: str, out: Path, name: str) -> str:
    """Open the image, empty the ROI Manager, run ``call``, then record what a user would see."""
    return (f'close("*"); open("{image}"); roiManager("reset");\n{call}\n'
            # saving an empty ROI Manager opens an error box: a nested -batch macro's ROIs are not in this one
            f'if (roiManager("count") > 0) roiManager("save", "{out}/{name}/manager.zip");\n'
            f'File.saveString("" + isOpen("nuclei.tif-labels"), "{out}/{name}/shown.txt");\n')


def _call(transport: str, options: str) -> str:
    if transport == "segment_with_cli":
        script = Path(__file__).resolve().parents[1] / "fiji-scripts" / "segment_with_cli.ijm"
        return f'runMacro("{script}", "cli=[{CLI}] {options}");'
    return f'run("micro-sam APG", "{options}");'


@pytest.fixture(scope="module")
def in_process(setup, bridge):
    from microsam_fiji.imagej import MacroError

    root, image, model = setup
    out = root / "in-process"
    errors = []
    for name, template in CASES.items():
        (out / name).mkdir(parents=True)
        macro(_case_macro(image, _call("in-process", _options(template, out, model)), out, name))
    for template in ERRORS:
        try:
            macro(open_image(str(image)) + _call("in-process", _options(template, out, model)))
            errors.append("(no error)")
        except MacroError as err:
            errors.append(str(err))
    return out, errors


@pytest.fixture(scope="module")
def in_imagej(setup, tmp_path_factory):
    """The plugin and segment_with_cli.ijm in one ImageJ started as a user starts it; each case a nested macro,
    so an error stops only its case; ImageJ prints each error on standard error, in order."""
    from helpers.imagej import require_imagej

    require_imagej(display=True)
    root, image, model = setup
    folder = fresh_imagej_folder(tmp_path_factory.mktemp("fiji"))
    run_cli("install-fiji", folder)
    lines = []
    for transport in ("plugin", "segment_with_cli"):
        out = root / transport
        for name, template in CASES.items():
            (out / name).mkdir(parents=True)
            case = root / f"{transport}-{name}.ijm"
            case.write_text(_case_macro(image, _call(transport, _options(template, out, model)), out, name))
            lines.append(f'runMacro("{case}");')
        for k, template in enumerate(ERRORS):
            if transport == "segment_with_cli" and k not in CLI_ERRORS:
                continue
            case = root / f"{transport}-error-{k}.ijm"
            case.write_text(f'close("*"); open("{image}");\n' + _call(transport, _options(template, out, model)))
            lines.append(f'runMacro("{case}");')
    main = root / "main.ijm"
    main.write_text("\n".join(lines) + '\nprint("all-done=1");\n')
    tmp = tmp_path_factory.mktemp("ijtmp")
    done = run_watched([*xvfb_run(), "java", f"-Djava.io.tmpdir={tmp}",
                        f"-Dplugins.dir={folder}", "-jar", str(IJ_JAR), "-ijpath", str(folder), "-batch",
                        str(main)], timeout=1400)
    assert "all-done=1" in done.stdout, (done.stdout, done.stderr)
    # -batch: the plugin's errors go to standard error, a script's exit("...") to standard output (after them)
    messages = [line for line in done.stderr.splitlines() + done.stdout.splitlines()
                if line.startswith("micro-sam APG: ") and " objects in " not in line]
    assert len(messages) == len(ERRORS) + len(CLI_ERRORS), (done.stdout, done.stderr)
    # in -batch a nested macro's ROI Manager is its own: the script's count line says what it added
    counts = [int(line.split()[2]) for line in done.stdout.splitlines()
              if line.startswith("micro-sam APG: ") and " objects in " in line]
    return {"plugin": messages[:len(ERRORS)], "segment_with_cli": messages[len(ERRORS):], "counts": counts}


@pytest.fixture(scope="module")
def results(setup, in_process, in_imagej):
    root, _, _ = setup
    return {"in-process": (in_process[0], in_process[1]),
            "plugin": (root / "plugin", in_imagej["plugin"]),
            "segment_with_cli": (root / "segment_with_cli", in_imagej["segment_with_cli"]),
            "script counts": in_imagej["counts"]}


def _rois(path: Path):
    from microsam_fiji.rois.roiset import read_roiset

    return read_roiset(path)


@pytest.mark.parametrize("case", list(CASES))
def test_same_labels_rois_and_show_from_every_transport(results, case):
    from microsam_fiji.rois.decode import rois_to_labels

    reference_out = results["in-process"][0]
    labels = tifffile.imread(reference_out / case / "labels.tif")
    assert labels.max() >= 3  # a real segmentation to compare
    names = [roi.name for roi in _rois(reference_out / case / "rois.zip")]
    assert len(names) == len(np.unique(labels)) - 1
    for transport in TRANSPORTS:
        out = results[transport][0] / case
        np.testing.assert_array_equal(tifffile.imread(out / "labels.tif"), labels, err_msg=transport)
        written = _rois(out / "rois.zip")
        assert [r.name for r in written] == names, transport
        np.testing.assert_array_equal(rois_to_labels(written, labels.shape), labels, err_msg=transport)
        if transport == "segment_with_cli":  # its ROI Manager (a nested -batch macro's) is its own
            assert results["script counts"][list(CASES).index(case)] == len(names)
        else:
            manager = _rois(out / "manager.zip")
            assert [r.name for r in manager] == names, transport
            np.testing.assert_array_equal(rois_to_labels(manager, labels.shape), labels, err_msg=transport)
        assert [r.properties for r in written] == [r.properties for r in _rois(reference_out / case / "rois.zip")]
        shown = (out / "shown.txt").read_text().strip()
        assert shown == ("1" if " show " in f" {CASES[case]} " else "0"), transport


def test_same_one_line_errors_from_every_transport(results):
    reference = results["in-process"][1]
    assert len(reference) == len(ERRORS) and all(m.startswith("micro-sam APG: ") for m in reference), reference
    assert "unknown option 'bogus'" in reference[0] and "not found" in reference[1]
    assert ".zip" in reference[2] and "768,768" in reference[3]
    for transport in ("plugin", "segment_with_cli"):
        theirs = [line.replace(str(results[transport][0]), "{out}") for line in results[transport][1]]
        ours = [line.replace(str(results["in-process"][0]), "{out}") for line in reference]
        if transport == "segment_with_cli":
            ours = [ours[k] for k in CLI_ERRORS]
        assert theirs == ours, transport
