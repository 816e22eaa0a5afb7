"""``microsam-fiji install-fiji DIR`` again and ``--uninstall`` on a folder where the user edited installed macros,
and the installed macros as menu commands in a real ImageJ 1.x (``java -jar ij.jar`` under Xvfb, ``-batch``).

An edited file (its content differs from what install recorded) is never overwritten or deleted: the new version
goes beside it as ``NAME.new`` (a name ImageJ makes no command of), ``--force`` replaces it."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import tifffile

from helpers.imagej import fresh_imagej_folder, printed, require_imagej, run_cli, run_imagej, worker_log

SCRIPTS = Path(__file__).resolve().parents[1] / "fiji-scripts"
CONFIG = "plugins/micro-sam-fiji.properties"
MENU = {"Segment Folder": "batch_folder.ijm",
        "Segment With CLI": "segment_with_cli.ijm"}  # Plugins > micro-sam > command: the macro it runs


def files_in(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def config_of(folder: Path) -> dict[str, str]:
    from microsam_fiji.installer.install import read_config

    return read_config(folder / CONFIG)


def test_installed_macros_are_plugins_menu_commands_and_an_edited_one_stays_in_use(tmp_path, stardist_image):
    """Plugins > micro-sam > Segment Folder / Segment With CLI exist in ImageJ 1.x; a command given options passes
    them to its macro (no dialog); after the user edited macros/batch_folder.ijm and installed again, the command
    runs the user's version and the .new file beside it is no command."""
    require_imagej(display=True)
    folder = fresh_imagej_folder(tmp_path)
    run_cli("install-fiji", folder)
    edited = folder / "macros" / "batch_folder.ijm"
    edited.write_text('print("user-edit=1");\n' + edited.read_text())
    done = run_cli("install-fiji", folder)
    assert "kept macros/batch_folder.ijm" in done.stdout
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    tifffile.imwrite(images / "cells.tif", stardist_image[:128, :128], imagej=True)
    names = ", ".join(f'"{name}"' for name in MENU)
    macro = f"""
run("Segment Folder", "input=[{tmp_path / 'missing'}] output=[{out}]");   // the macro's own exit message, no dialog
run("Segment Folder", "input=[{images}] output=[{out}] min_size=20");
List.setCommands;
names = newArray({names});
for (i = 0; i < names.length; i++) print("command" + i + "=" + List.get(names[i]));
keys = split(List.getList, "\\n"); ours = 0;
for (i = 0; i < keys.length; i++) if (indexOf(keys[i], "micro-sam/") >= 0) ours++;
print("ours=" + ours);
"""
    ran = run_imagej(folder, macro, tmp_path, timeout=400)
    values = printed(ran.stdout)
    assert "ours" in values, f"{ran.stdout}\n{ran.stderr}\n{worker_log(tmp_path)}"
    for k, name in enumerate(MENU):
        runner = values[f"command{k}"]
        assert re.fullmatch(r'ij\.plugin\.Macro_Runner\("micro-sam/' + name.replace(" ", "_") + r'\.ijm"\)', runner)
    assert values["ours"] == str(len(MENU))  # no command from batch_folder.ijm.new or any other file
    assert "input folder" in ran.stdout + ran.stderr and "not found" in ran.stdout + ran.stderr
    assert values.get("user-edit") == "1"  # the user's macros/batch_folder.ijm ran
    labels = tifffile.imread(out / "cells_labels.tif")
    count = re.search(r"1/1 cells\.tif: (\d+) objects", ran.stdout)  # the script's own report
    assert labels.max() > 0 and count and int(count.group(1)) == len(np.unique(labels)) - 1, ran.stdout


def test_reinstall_keeps_an_edited_macro_writes_the_new_one_beside_it_and_force_replaces(tmp_path):
    folder = fresh_imagej_folder(tmp_path)
    run_cli("install-fiji", folder)
    config = config_of(folder)
    installed = [f for f in config["files"].split(",")]
    assert "plugins/micro-sam/Segment_With_CLI.ijm" in installed
    for rel in installed:  # a hash of each file as installed
        assert config[f"sha256.{rel}"] == hashlib.sha256((folder / rel).read_bytes()).hexdigest()
    shipped = (SCRIPTS / "batch_folder.ijm").read_text()
    mine = folder / "macros" / "batch_folder.ijm"
    mine.write_text("// my changes\n" + shipped)
    launcher = folder / "plugins" / "micro-sam" / "Segment_Folder.ijm"
    launcher.write_text("// my launcher\n")
    before = files_in(folder)

    done = run_cli("install-fiji", folder)
    kept = [line for line in done.stdout.splitlines() if line.startswith("kept ")]
    assert len(kept) == 2 and "macros/batch_folder.ijm" in kept[0] + kept[1], done.stdout
    assert all("--force" in line and ".new" in line for line in kept)
    assert mine.read_text() == "// my changes\n" + shipped and launcher.read_text() == "// my launcher\n"
    assert (folder / "macros" / "batch_folder.ijm.new").read_text() == shipped
    assert (folder / "plugins" / "micro-sam" / "Segment_Folder.ijm.new").is_file()
    assert files_in(folder) == sorted(before + ["macros/batch_folder.ijm.new",
                                                "plugins/micro-sam/Segment_Folder.ijm.new"])

    done = run_cli("install-fiji", folder)  # again: still the user's (compared with what install wrote first)
    assert mine.read_text().startswith("// my changes") and done.stdout.count("kept ") == 2

    done = run_cli("install-fiji", folder, "--force")
    assert "replaced" in done.stdout and "macros/batch_folder.ijm" in done.stdout and "kept " not in done.stdout
    assert mine.read_text() == shipped and launcher.read_text() != "// my launcher\n"
    assert files_in(folder) == before  # the .new files are gone
    done = run_cli("install-fiji", folder)
    assert "kept " not in done.stdout and "replaced" not in done.stdout


def test_uninstall_keeps_edited_files_and_removes_the_rest_and_the_empty_submenu(tmp_path):
    folder = fresh_imagej_folder(tmp_path)
    (folder / "plugins" / "Other_Plugin.jar").write_bytes(b"not ours")
    run_cli("install-fiji", folder)
    run_cli("install-fiji", folder, "--uninstall")
    assert files_in(folder) == ["plugins/Other_Plugin.jar"]
    assert not (folder / "plugins" / "micro-sam").exists()

    run_cli("install-fiji", folder)
    mine = folder / "plugins" / "micro-sam" / "Segment_With_CLI.ijm"
    mine.write_text("// mine now\n")
    (folder / "macros" / "segment_with_cli.ijm").write_text("// mine too\n")
    run_cli("install-fiji", folder)  # leaves .new files beside the edited ones
    done = run_cli("install-fiji", folder, "--uninstall")
    kept = [line for line in done.stdout.splitlines() if line.startswith("kept ")]
    assert len(kept) == 2 and all("edited" in line for line in kept), done.stdout
    assert files_in(folder) == ["macros/segment_with_cli.ijm", "plugins/Other_Plugin.jar",
                                "plugins/micro-sam/Segment_With_CLI.ijm"]
    assert mine.read_text() == "// mine now\n"
    # now the user's files: installing again stops at them (exit 2, one line) unless --force
    done = run_cli("install-fiji", folder, check=False)
    assert done.returncode == 2 and "was not installed by micro-sam-fiji" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_install_without_recorded_hashes_keeps_only_files_that_differ_from_the_shipped_ones(tmp_path):
    """A folder installed by an older version (files= list only, macros in macros/): a macro equal byte for byte
    to the shipped one counts as unedited, any other is kept; the jar is always replaced."""
    folder = fresh_imagej_folder(tmp_path)
    run_cli("install-fiji", folder)
    old = [rel for rel in config_of(folder)["files"].split(",") if not rel.startswith("plugins/micro-sam/")]
    config = (folder / CONFIG).read_text().splitlines()
    old_config = [line for line in config if not line.startswith(("sha256.", "files="))] + [f"files={','.join(old)}"]
    (folder / CONFIG).write_text("\n".join(old_config) + "\n")
    for path in (folder / "plugins" / "micro-sam").iterdir():
        path.unlink()
    (folder / "plugins" / "micro-sam").rmdir()
    (folder / "macros" / "batch_folder.ijm").write_text("// edited under the old version\n")
    jar = folder / "plugins" / "micro_sam_fiji.jar"
    jar.write_bytes(b"an old jar")

    done = run_cli("install-fiji", folder)
    kept = [line for line in done.stdout.splitlines() if line.startswith("kept ")]
    assert len(kept) == 1 and kept[0].startswith("kept macros/batch_folder.ijm:"), done.stdout
    assert (folder / "macros" / "batch_folder.ijm").read_text() == "// edited under the old version\n"
    assert jar.read_bytes() != b"an old jar" and (folder / "plugins" / "micro-sam" / "Segment_Folder.ijm").is_file()

    (folder / CONFIG).write_text("\n".join(old_config) + "\n")  # uninstall with the old config
    (folder / "macros" / "batch_folder.ijm.new").unlink()
    for path in (folder / "plugins" / "micro-sam").iterdir():
        path.unlink()
    done = run_cli("install-fiji", folder, "--uninstall")
    assert done.stdout.count("kept ") == 1 and "macros/batch_folder.ijm" in done.stdout
    assert files_in(folder) == ["macros/batch_folder.ijm"] and not (folder / "plugins" / "micro-sam").exists()
