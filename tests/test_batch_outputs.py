"""A batch never overwrites a file it did not write, never takes its own outputs (or a label
image beside its image) for an input, never replaces another input's outputs, keeps the rows of earlier batches
in summary.csv, and resumes only when the input's content is unchanged (not just its size and time).

The images are constant (no objects, the model is not run) except where the labels themselves are checked."""
from __future__ import annotations

import csv
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from microsam_fiji.batch.api import segment_many
from microsam_fiji.cli import main


def flat(path: Path, value: int, shape=(40, 48)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, np.full(shape, value, np.uint8))
    return path


def summary_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "summary.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_ground_truth_beside_the_image_is_neither_overwritten_nor_segmented(tmp_path, demo_model):
    gtw = tmp_path / "gtw"
    flat(gtw / "x.tif", 7)
    truth = np.ones((40, 48), np.uint16)  # one object filling the image: constant, so no model run below
    tifffile.imwrite(gtw / "x_labels.tif", truth)
    truth_bytes = (gtw / "x_labels.tif").read_bytes()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = segment_many(gtw, gtw, demo_model)
    assert (gtw / "x_labels.tif").read_bytes() == truth_bytes  # the user's file, untouched
    assert [Path(r.image).name for r in summary.rows] == ["x.tif"]  # the ground truth is no input
    assert summary.rows[0].status == "done" and Path(summary.rows[0].labels).name == "x-2_labels.tif"
    assert tifffile.imread(gtw / "x-2_labels.tif").shape == (40, 48) and (gtw / "x-2_RoiSet.zip").is_file()
    assert not (gtw / "x_labels_labels.tif").exists() and not (gtw / "x.microsam.json").exists()
    messages = [str(w.message) for w in caught]
    assert any("x_labels.tif" in m and "x-2_labels.tif" in m for m in messages), messages
    assert any("left out" in m and "x_labels.tif" in m for m in messages), messages
    assert all("\n" not in m for m in messages)

    # a rerun finds its own outputs under the new name: skipped, the ground truth still untouched, and neither
    # x-2_labels.tif nor x_labels.tif is taken for an input
    again = segment_many(gtw, gtw, demo_model)
    assert [(Path(r.image).name, r.status, Path(r.labels).name) for r in again.rows] == [
        ("x.tif", "skipped", "x-2_labels.tif")]
    assert (gtw / "x_labels.tif").read_bytes() == truth_bytes
    # named explicitly, a file called like a label image is an input
    named = segment_many([gtw / "x_labels.tif"], tmp_path / "o2", demo_model)
    assert [(r.status, Path(r.labels).name) for r in named.rows] == [("done", "x_labels_labels.tif")]


def test_same_name_from_another_folder_does_not_replace_the_first_outputs(tmp_path, demo_model):
    out = tmp_path / "O"
    first = segment_many(flat(tmp_path / "stemA" / "x.tif", 3), out, demo_model)
    assert Path(first.rows[0].labels).name == "x_labels.tif"
    kept = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "summary.csv"}

    second = segment_many(flat(tmp_path / "stemB" / "x.tif", 5), out, demo_model)
    assert second.rows[0].status == "done" and Path(second.rows[0].labels).name == "x-2_labels.tif"
    for name, data in kept.items():  # the first run's outputs and stamp are as they were
        assert (out / name).read_bytes() == data, name
    stamp = json.loads((out / "x-2.microsam.json").read_text())
    assert stamp["image"]["path"] == str((tmp_path / "stemB" / "x.tif").resolve())
    # each input keeps its name on reruns: both are up to date
    assert segment_many(tmp_path / "stemA" / "x.tif", out, demo_model).rows[0].status == "skipped"
    again = segment_many(tmp_path / "stemB" / "x.tif", out, demo_model)
    assert (again.rows[0].status, Path(again.rows[0].labels).name) == ("skipped", "x-2_labels.tif")

    # summary.csv holds both inputs, once each, however often they were run
    rows = summary_rows(out)
    assert sorted(Path(r["image"]).parent.name for r in rows) == ["stemA", "stemB"]
    assert {Path(r["labels"]).name for r in rows} == {"x_labels.tif", "x-2_labels.tif"}


def test_summary_keeps_the_rows_of_earlier_batches(tmp_path, demo_model):
    out = tmp_path / "out"
    a, b, c = flat(tmp_path / "in" / "a.tif", 1), flat(tmp_path / "in" / "b.tif", 2), flat(tmp_path / "c.tif", 3)
    segment_many([a, b], out, demo_model)
    segment_many([c], out, demo_model)
    rows = summary_rows(out)
    assert [Path(r["image"]).name for r in rows] == ["a.tif", "b.tif", "c.tif"]
    # rerunning one of them replaces its row (keyed by the input path), it is not added twice
    segment_many([b], out, demo_model, overwrite=True)
    rows = summary_rows(out)
    assert [Path(r["image"]).name for r in rows] == ["a.tif", "b.tif", "c.tif"]
    assert [r["status"] for r in rows] == ["done", "done", "done"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_a_summary_csv_of_the_user_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.csv").write_text("sample,weight\nmouse1,21\n")
    code = main(["segment", str(flat(tmp_path / "a.tif", 1)), "--out", str(out), "--device", "cpu"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "summary.csv" in lines[0] and "did not write" in lines[0]
    assert (out / "summary.csv").read_text() == "sample,weight\nmouse1,21\n"
    assert not (out / "a_labels.tif").exists()


def test_an_interrupted_write_keeps_its_name(tmp_path, demo_model):
    """A run killed after the labels were written but before the stamp: the stamp written first (a claim) says the
    file is ours, so the rerun replaces it instead of moving to x-2."""
    from microsam_fiji.batch.plan import plan_jobs
    from microsam_fiji.batch.stamp import claim

    image, out = flat(tmp_path / "x.tif", 4), tmp_path / "out"
    out.mkdir()
    (job,) = plan_jobs([image], out, rois=True)
    claim(job)
    tifffile.imwrite(job.labels, np.ones((40, 48), np.uint16))  # half a run: labels there, no final stamp
    summary = segment_many(image, out, demo_model)
    assert (summary.rows[0].status, Path(summary.rows[0].labels).name) == ("done", "x_labels.tif")
    assert not tifffile.imread(out / "x_labels.tif").any()


def test_resume_sees_content_changed_with_size_and_time_kept(tmp_path, demo_model):
    image, out = flat(tmp_path / "x.tif", 10), tmp_path / "out"
    assert segment_many(image, out, demo_model).rows[0].status == "done"
    assert segment_many(image, out, demo_model).rows[0].status == "skipped"
    before = os.stat(image)
    flat(image, 11)  # other pixels, same size: then the time put back as `touch -r` would
    os.utime(image, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(image)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert segment_many(image, out, demo_model).rows[0].status == "done"
    assert segment_many(image, out, demo_model).rows[0].status == "skipped"
    stamp = json.loads((out / "x.microsam.json").read_text())
    assert len(stamp["image"]["blake2b"]) >= 32


def test_renamed_outputs_never_collide_with_another_input(tmp_path, demo_model):
    """x.tif moves to x-3 where x_labels.tif is the user's and another input of the batch is called x-2."""
    d = tmp_path / "d"
    flat(d / "x.tif", 1)
    tifffile.imwrite(d / "x_labels.tif", np.ones((40, 48), np.uint16))
    flat(d / "x-2.tif", 2)
    summary = segment_many([d / "x.tif", d / "x-2.tif"], d, demo_model)
    assert [(r.status, Path(r.labels).name) for r in summary.rows] == [
        ("done", "x-3_labels.tif"), ("done", "x-2_labels.tif")]
    assert tifffile.imread(d / "x_labels.tif").all()
    again = segment_many(d, d, demo_model)  # the folder: its outputs and the ground truth are no inputs
    assert [(Path(r.image).name, r.status, Path(r.labels).name) for r in again.rows] == [
        ("x-2.tif", "skipped", "x-2_labels.tif"), ("x.tif", "skipped", "x-3_labels.tif")]


def test_a_summary_saved_again_by_a_spreadsheet_is_still_merged(tmp_path, demo_model):
    out = tmp_path / "out"
    segment_many(flat(tmp_path / "a.tif", 1), out, demo_model)
    text = (out / "summary.csv").read_text(encoding="utf-8")
    (out / "summary.csv").write_text("\ufeff" + text, encoding="utf-8")  # the BOM Excel writes
    segment_many(flat(tmp_path / "b.tif", 2), out, demo_model)
    assert [Path(r["image"]).name for r in summary_rows(out)] == ["a.tif", "b.tif"]


def test_two_batches_planning_at_once_into_one_out_take_different_names(tmp_path, demo_model):
    """The race of two batches started together (A/x.tif and B/x.tif into one --out): each claims its names
    under the folder's lock before any image is segmented, so the second to plan sees 'x' taken by another
    input, even though the first has written no output yet."""
    from microsam_fiji.batch.plan import claim_jobs, expand_images

    a, b = flat(tmp_path / "A" / "x.tif", 3), flat(tmp_path / "B" / "x.tif", 5)
    out = tmp_path / "out"
    out.mkdir()
    first = claim_jobs(expand_images([a]), out, rois=True)  # batch A has planned; it segments nothing yet
    assert [j.name for j in first] == ["x"] and not (out / "x_labels.tif").exists()
    with pytest.warns(UserWarning, match="holds the result of another image"):
        second = claim_jobs(expand_images([b]), out, rois=True)
    assert [j.name for j in second] == ["x-2"]
    assert claim_jobs(expand_images([a]), out, rois=True)[0].name == "x"  # A again: its own claim, its name
    # both batches run to the end: each output holds its own image, the summary both rows
    segment_many([b], out, demo_model)
    segment_many([a], out, demo_model)
    assert json.loads((out / "x.microsam.json").read_text())["image"]["path"] == str(a.resolve())
    assert json.loads((out / "x-2.microsam.json").read_text())["image"]["path"] == str(b.resolve())
    assert sorted(Path(r["image"]).parent.name for r in summary_rows(out)) == ["A", "B"]


def test_a_batch_that_stops_before_an_image_frees_its_claim(tmp_path):
    from microsam_fiji.core.errors import UserError

    image = flat(tmp_path / "in" / "y.tif", 4)
    out = tmp_path / "out"
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")  # found, so the batch plans and claims; its load then fails
    with pytest.raises(UserError):
        segment_many([image], out, broken)
    assert out.is_dir() and not (out / "y.microsam.json").exists()  # the name is free again
