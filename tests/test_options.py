"""The commands' options are declared once (``command/options.py``'s table): the parser, the plugin's dialog (sent
by the worker), the in-process dialog, the Help page and the docs' table are all made from it and agree."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from microsam_fiji.command.options import (
    BY_COMMAND,
    COMMANDS,
    OPTIONS,
    dialog_fields,
    flags_of,
    help_rows,
    keys_of,
    markdown_table,
    parse_options,
)
from microsam_fiji.core.errors import UserError
from microsam_fiji.core.params import canonical_name, default_params
from microsam_fiji.imagej.listener import quoted
from microsam_fiji.worker.tasks import hello

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _example(field: dict) -> str | None:
    """A value a user could enter in the field (None: a flag, written as its key alone)."""
    return {"model": "/my models/m]1.pt", "choice": (field["choices"] or ["x"])[-1], "number": "0.35",
            "integer": "31", "file": "/out dir/a.zip" if field["key"] == "rois" else "/out dir/a.tif",
            "pair": "512,512", "text": "word", "channel": "2", "folder": "/in dir/images"}.get(field["kind"])


@pytest.mark.parametrize("command", COMMANDS)
def test_dialog_fields_parser_keys_and_help_rows_come_from_one_table(command):
    fields = dialog_fields(command)
    keys = [f["key"] for f in fields]
    assert keys and len(keys) == len(set(keys))
    parser_keys = set(flags_of(command)) | set(keys_of(command))
    parameters = {o.key for o in OPTIONS if command in o.commands and o.param}
    # every field the dialog shows is a key the parser takes, and every key the parser takes is in the Help page
    assert set(keys) <= parser_keys | parameters
    help_html = help_rows(command)
    for key in parser_keys | parameters:
        assert f"<li><b>{key}</b>" in help_html, key
    # what a dialog writes back from its fields is parsed into exactly those values
    written, expected = [], {}
    for field in fields:
        value = _example(field)
        if value is None:
            written.append(field["key"])
            expected[field["key"]] = True
        else:
            written.append(f"{field['key']}={quoted(value)}")
            expected[field["key"]] = value
    opts = parse_options(" ".join(written), command=command)
    for key, value in expected.items():
        option = BY_COMMAND[command][key]
        attribute = {"tile": "tile_shape", "3d": "volume"}.get(key, key)
        if option.param:
            assert opts.params[key] == value
            continue
        got = getattr(opts, attribute) if hasattr(opts, attribute) else opts.values[key]
        if option.kind == "pair":
            assert got == (512, 512)
        elif option.kind in ("integer", "channel"):
            assert got == int(value), key
        elif option.kind == "number":
            assert got == float(value), key
        else:
            assert got == value, key


def test_numeric_defaults_are_micro_sams_and_the_worker_sends_the_table():
    apg = default_params("apg")
    fields = {f["key"]: f for f in dialog_fields("apg")}
    for key in ("foreground", "center", "boundary", "min_size", "nms"):
        assert fields[key]["default"] == apg[canonical_name(key)], key
    sent = hello({"plugin_version": __import__("microsam_fiji.core.version", fromlist=["x"]).package_version()})
    assert sent["dialog"]["apg"] == dialog_fields("apg") and sent["dialog"]["prompt"] == dialog_fields("prompt")
    assert sent["help"]["apg"] == help_rows("apg")
    # each threshold's label starts with its key (the Recorder's) and says which way it moves the result
    for key in ("foreground", "center", "boundary", "nms"):
        label = fields[key]["label"]
        assert label.split(" ", 1)[0] == key and re.search(r"(higher|lower): ", label), label


def test_docs_hold_the_tables_made_from_the_table():
    text = (DOCS / "fiji.md").read_text(encoding="utf-8")
    for command in COMMANDS:
        table = re.search(rf"<!-- options:{command} -->\n(.*?)\n<!-- /options -->", text, re.S)
        assert table is not None, f"docs/fiji.md lacks the {command} table markers"
        assert table.group(1).strip() == markdown_table(command), \
            f"docs/fiji.md's {command} table differs from the options table: paste markdown_table('{command}')"


def test_a_bracketed_value_with_a_closing_bracket_names_the_quotes():
    with pytest.raises(UserError) as err:
        parse_options("model=[/data/mod]els/m.pt] center=0.3")
    assert str(err.value) == ("model=[/data/mod]els/m.pt]: the value holds a ']', which ends [...] early: write it "
                              "in quotes, model='/data/mod]els/m.pt'")
    assert parse_options("model='/data/mod]els/m.pt' center=0.3").model == "/data/mod]els/m.pt"
    assert parse_options("model=[/data/[old] set/m.zip]").model == "/data/[old] set/m.zip"  # nested: one value


def test_train_values_not_given_are_the_tables_defaults(monkeypatch):
    """The worker reads micro-sam Train's ``minutes`` / ``validation`` from the parsed options: a default changed in
    the table is what a call without the option gets."""
    from microsam_fiji.command import options

    table = options.BY_COMMAND["train"]
    monkeypatch.setitem(table, "minutes", dataclasses.replace(table["minutes"], default=3.5))
    for given in ("", "out=[m.pt]"):
        values = options.parse_options(given, "train").values
        assert values["minutes"] == 3.5 and values["validation"] == table["validation"].default, values
    assert options.parse_options("out=[m.pt] minutes=2 validation=0", "train").values["minutes"] == 2.0
    assert options.parse_options("center=0.3").values == {}  # APG's options all have attributes
