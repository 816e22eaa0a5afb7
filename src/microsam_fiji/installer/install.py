"""``microsam-fiji install-fiji DIR``: put the plugin into a Fiji.app or ImageJ 1.x folder.

``DIR/plugins/`` gets ``micro_sam_fiji.jar`` (command *Plugins › Segmentation › micro-sam APG*) and
``micro-sam-fiji.properties`` (this Python interpreter, the default model and device, the package version, the
models the dialog offers by name, the list of files added and the sha256 of each as written); ``DIR/macros/``
the fiji-scripts (other macros call them there by path), and ``DIR/plugins/micro-sam/`` one small launcher per script,
which ImageJ 1.x and Fiji list as
*Plugins › micro-sam › Segment Folder* etc. (see :data:`MENU`): each runs its script in ``macros/``.

Files of the user's are never overwritten or deleted:

* a file of the same name that this command did not install stops the install (``--force`` replaces it);
* an installed file the user edited since (its content no longer has the recorded sha256; one installed by a
  version that recorded none: unless it equals the shipped file byte for byte) stays as it is on a reinstall, the
  new version goes beside it as ``NAME.new`` (ImageJ makes no command of it), ``--force`` replaces it;
  ``--uninstall`` keeps it and removes the rest of what the list names, and the submenu folder once empty.

The jar and the ``.new`` files are this package's alone: always replaced and removed."""
from __future__ import annotations

import hashlib
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from microsam_fiji.core.errors import UserError

CONFIG_NAME = "micro-sam-fiji.properties"  # read by fiji-plugin/.../Config.java


SUBMENU = "micro-sam"  # plugins/micro-sam/: the submenu Plugins > micro-sam
# fiji-script -> its command in Plugins > micro-sam (the launcher's file name: ImageJ turns "_" into spaces)
MENU = {"batch_folder.ijm": "Segment_Folder.ijm", "segment_with_cli.ijm": "Segment_With_CLI.ijm"}
NEW_SUFFIX = ".new"  # the new version beside an edited file: no command in ImageJ (not .ijm/.txt/.js/.py/.bsh)
HASH_KEY = "sha256."  # one "sha256.<file>=<hex>" line per installed file in the config


@dataclass
class Installation:
    """What :func:`install` or :func:`uninstall` did; paths relative to ``folder``."""

    folder: Path
    files: list[Path] = field(default_factory=list)  # install: the files recorded; uninstall: the ones removed
    config: Path | None = None
    kept: list[tuple[Path, Path | None]] = field(default_factory=list)  # edited files left alone, their .new
    replaced: list[Path] = field(default_factory=list)  # edited (or foreign) files overwritten with --force
    removed: list[Path] = field(default_factory=list)  # install: files of an earlier version no longer shipped


def _plugins_folder(folder: Path) -> Path:
    folder = folder.expanduser()
    if not folder.is_dir():
        raise UserError(f"'{folder}' is not a folder: give the Fiji.app (or ImageJ) folder")
    plugins = folder / "plugins"
    if not plugins.is_dir():
        raise UserError(f"'{folder}' has no plugins/ folder: give the Fiji.app (or ImageJ) folder that holds "
                        "plugins/")
    return plugins


def read_config(path: Path) -> dict[str, str]:
    """The ``key=value`` lines of a config (Java Properties syntax as this module writes it).

    Args:
        path: the ``micro-sam-fiji.properties`` file.

    Returns:
        its values by key (backslash escapes undone)."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().replace("\\\\", "\\").replace("\\:", ":")
    return values


def _escape(value: str) -> str:
    # java.util.Properties treats backslashes as escapes (Windows paths)
    return value.replace("\\", "\\\\")


def _model_setting(model: str | None) -> str:
    if not model:
        return ""
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve())
    from microsam_fiji.models.demo import DEMO_NAME
    from microsam_fiji.models.registry import registry_names
    from microsam_fiji.models.zoo_id import zoo_reference

    if (model != DEMO_NAME and model not in registry_names() and zoo_reference(model) is None
            and ("/" in model or model.endswith((".pt", ".zip")))):
        raise UserError(f"model '{model}' not found: give an existing checkpoint or package, or a micro-sam name")
    return model


def apg_model_names() -> list[str]:
    """The models the plugin's dialog offers by name: the demo model and micro-sam's registry models that have an
    instance decoder (APG / AIS need one), as ``microsam-fiji models`` lists them.

    Returns:
        the names, the demo model first."""
    from microsam_fiji.models.demo import DEMO_NAME
    from microsam_fiji.models.registry import registry_entries

    return [DEMO_NAME, *(m.name for m in registry_entries() if m.has_decoder)]


def menu_name(script: str) -> str:
    """The launcher file name of a fiji-script in ``plugins/micro-sam/``.

    Args:
        script: the script's file name, e.g. ``batch_folder.ijm``.

    Returns:
        e.g. ``Segment_Folder.ijm`` (command *Segment Folder*); scripts not in :data:`MENU` get their own name
        in title case."""
    return MENU.get(script) or "_".join(part.capitalize() for part in Path(script).stem.split("_")) + ".ijm"


def launcher(script: str) -> bytes:
    """The macro behind *Plugins › micro-sam › …*: it runs ``macros/<script>``, passing on the argument, or the
    options of ``run("<command>", "options")`` in a macro (then the script opens no dialog).

    Args:
        script: the fiji-script's file name in ``macros/``.

    Returns:
        the launcher's text, UTF-8."""
    command = menu_name(script)[:-4].replace("_", " ")
    return (f"// Plugins > {SUBMENU} > {command}: runs macros/{script} (written by microsam-fiji install-fiji;\n"
            f"// edit that macro, not this file). In a macro: run(\"{command}\", \"options\") passes the options as\n"
            f"// its argument, and it opens no dialog.\n"
            f"arg = getArgument();\n"
            f"if (arg == \"\") arg = call(\"ij.Macro.getOptions\");\n"
            f"if (arg == \"null\") arg = \"\";\n"
            f"path = getDirectory(\"macros\") + \"{script}\";\n"
            f"if (!File.exists(path))\n"
            f"    exit(\"micro-sam: \" + path + \" is missing: run microsam-fiji install-fiji again\");\n"
            f"runMacro(path, String.trim(arg));\n").encode("utf-8")


def _shipped() -> dict[str, bytes]:
    """The macros this version installs (``macros/`` and the launchers), by path relative to the folder."""
    from microsam_fiji.installer.jar import fiji_scripts

    files: dict[str, bytes] = {}
    for script in fiji_scripts():
        files[f"macros/{script.name}"] = script.read_bytes()
        files[f"plugins/{SUBMENU}/{menu_name(script.name)}"] = launcher(script.name)
    return files


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _recorded(config: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """The files an earlier install listed (``/``-separated) and the sha256 it recorded for each (may be none)."""
    files = [rel.replace("\\", "/") for rel in config.get("files", "").split(",") if rel]
    hashes = {key[len(HASH_KEY):]: value for key, value in config.items() if key.startswith(HASH_KEY)}
    return files, hashes


def _ours_alone(rel: str) -> bool:
    """The jar and the .new files: never the user's, always replaced and removed."""
    from microsam_fiji.installer.jar import JAR_NAME

    return rel == f"plugins/{JAR_NAME}" or rel.endswith(NEW_SUFFIX)


def _edited(path: Path, recorded_hash: str | None, shipped: bytes | None) -> bool:
    """Whether the user changed an installed file: against the recorded sha256, else the shipped content."""
    data = path.read_bytes()
    if recorded_hash:
        return _sha256(data) != recorded_hash
    return shipped is None or data != shipped


def _inside(folder: Path, rel: str) -> Path | None:
    path = (folder / rel).resolve()
    return path if folder in path.parents else None  # the list is ours, but never touch outside the folder


def _remove_empty_submenu(plugins: Path) -> None:
    submenu = plugins / SUBMENU
    if submenu.is_dir() and not any(submenu.iterdir()):
        submenu.rmdir()


def install(folder: str | Path, model: str | None = None, device: str | None = None, force: bool = False,
            python: str | None = None) -> Installation:
    """Install (or install again over an earlier install) into a Fiji.app or ImageJ 1.x folder.

    Args:
        folder: the folder that holds ``plugins/``.
        model: the default model recorded for the plugin (``None``: the demo model).
        device: the default device recorded (``None``: cuda if available).
        force: replace files of the same name that this command did not install, and installed files the user
            edited since (else those stop the install, and edited ones stay with the new version beside them).
        python: the interpreter recorded for the plugin's worker (default: this one).

    Returns:
        the files recorded, the config, and the edited files kept or replaced.

    Raises:
        UserError: not such a folder, not writable, a bad model, or a file of the user's in the way."""
    from microsam_fiji.core.tiff_io import atomic_write
    from microsam_fiji.core.version import package_version
    from microsam_fiji.core.writable import check_writable
    from microsam_fiji.installer.jar import JAR_NAME, ensure_jar

    folder = Path(folder).expanduser().resolve()
    plugins = _plugins_folder(folder)
    check_writable(plugins, "the plugins folder", folder=True)
    check_writable(folder / "macros", "the macros folder", folder=True)
    check_writable(plugins / SUBMENU, "the plugins/micro-sam folder", folder=True)
    config_path = plugins / CONFIG_NAME
    previous, hashes = _recorded(read_config(config_path)) if config_path.is_file() else ([], {})
    model_setting = _model_setting(model)
    shipped = _shipped()
    jar_rel = f"plugins/{JAR_NAME}"
    for rel in [jar_rel, *shipped]:
        if (folder / rel).exists() and rel not in previous and not force:
            raise UserError(f"'{folder / rel}' exists and was not installed by micro-sam-fiji: move it away or "
                            "pass --force")
    done = Installation(folder=folder, config=config_path)
    jar = ensure_jar()
    if (plugins / JAR_NAME).exists() and jar_rel not in previous:
        done.replaced.append(Path(jar_rel))  # only with --force (see above)
    atomic_write(plugins / JAR_NAME, lambda tmp: shutil.copyfile(jar, tmp))
    recorded = {jar_rel: _sha256(jar.read_bytes())}
    for rel, data in shipped.items():
        target, beside = folder / rel, folder / (rel + NEW_SUFFIX)
        if target.exists() and target.read_bytes() != data and (
                rel not in previous or _edited(target, hashes.get(rel), data)):
            if not force:  # the user's version stays; the new one goes beside it
                atomic_write(beside, lambda tmp, data=data: Path(tmp).write_bytes(data))
                done.kept.append((Path(rel), Path(rel + NEW_SUFFIX)))
                recorded[rel] = hashes.get(rel, "")  # still compared with what was installed first
                recorded[rel + NEW_SUFFIX] = _sha256(data)
                continue
            done.replaced.append(Path(rel))
        if target.is_file() and target.read_bytes() == data:
            pass  # unchanged: leave the file (and its time stamp) alone
        else:
            atomic_write(target, lambda tmp, data=data: Path(tmp).write_bytes(data))
        recorded[rel] = _sha256(data)
        if beside.is_file() and rel + NEW_SUFFIX in previous:
            beside.unlink()  # the proposal of an earlier reinstall, now in place
    for rel in previous:  # files an earlier version installed that this one no longer ships
        if rel in recorded or (path := _inside(folder, rel)) is None or not path.is_file():
            continue
        if _ours_alone(rel) or not _edited(path, hashes.get(rel), None):
            path.unlink()
            done.removed.append(Path(rel))
        else:
            done.kept.append((Path(rel), None))
            recorded[rel] = hashes.get(rel, "")
    lines = ["# written by microsam-fiji install-fiji; read by the micro-sam APG plugin",
             f"python={_escape(python or sys.executable)}",
             f"model={_escape(model_setting)}",
             f"device={device or ''}",
             f"version={package_version()}",
             "# the models the dialog offers by name (microsam-fiji models lists them and where they are)",
             f"models={','.join(apg_model_names())}",
             f"files={','.join(recorded)}",
             "# the sha256 of each file as installed: a file that no longer has it was edited, and is kept",
             *(f"{HASH_KEY}{rel}={digest}" for rel, digest in recorded.items() if digest)]
    # UTF-8, which Config.java reads with a UTF-8 Reader (Properties' own InputStream default is ISO-8859-1)
    atomic_write(config_path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    done.files = [Path(rel) for rel in recorded]
    return done


def uninstall(folder: str | Path) -> Installation:
    """Remove what :func:`install` added, except the files the user edited since.

    Args:
        folder: the Fiji.app or ImageJ folder given to :func:`install`.

    Returns:
        the files removed (``files``) and the edited ones kept (``kept``).

    Raises:
        UserError: no installation in that folder."""
    folder = Path(folder).expanduser().resolve()
    plugins = _plugins_folder(folder)
    config_path = plugins / CONFIG_NAME
    if not config_path.is_file():
        raise UserError(f"no micro-sam-fiji installation in '{folder}' (no plugins/{CONFIG_NAME})")
    files, hashes = _recorded(read_config(config_path))
    shipped = _shipped()
    done = Installation(folder=folder, config=config_path)
    for rel in files:
        path = _inside(folder, rel)
        if path is None or not path.is_file():
            continue
        if not _ours_alone(rel) and _edited(path, hashes.get(rel), shipped.get(rel)):
            done.kept.append((Path(rel), None))
            continue
        path.unlink()
        done.files.append(Path(rel))
    config_path.unlink()
    _remove_empty_submenu(plugins)
    return done
