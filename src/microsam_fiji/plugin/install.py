"""``microsam-fiji install-fiji DIR``: put the plugin into a Fiji.app or ImageJ 1.x folder.

``DIR/plugins/`` gets ``micro_sam_fiji.jar`` and ``micro-sam-fiji.properties`` (this Python interpreter, the
default model and device, the package version, and the list of files added), ``DIR/macros/`` the fiji-scripts.
``--uninstall`` removes exactly the files that list names. Files of the user's are never overwritten: a macro of
the same name that this command did not install stops the install (``--force`` replaces it)."""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from microsam_fiji.core.errors import UserError

CONFIG_NAME = "micro-sam-fiji.properties"  # read by fiji-plugin/.../Config.java


@dataclass
class Installation:
    folder: Path
    files: list[Path] = field(default_factory=list)  # relative to folder
    config: Path | None = None


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
    """The ``key=value`` lines of a config (Java Properties syntax as this module writes it)."""
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


def install(folder: str | Path, model: str | None = None, device: str | None = None, force: bool = False,
            python: str | None = None) -> Installation:
    from microsam_fiji.core.tiff_io import atomic_write
    from microsam_fiji.core.writable import check_writable
    from microsam_fiji.core.version import package_version
    from microsam_fiji.plugin.jar import JAR_NAME, ensure_jar, fiji_scripts

    folder = Path(folder).expanduser().resolve()
    plugins = _plugins_folder(folder)
    check_writable(plugins, "the plugins folder", folder=True)
    macros = folder / "macros"
    check_writable(macros, "the macros folder", folder=True)
    config_path = plugins / CONFIG_NAME
    previous = set(read_config(config_path).get("files", "").split(",")) if config_path.is_file() else set()
    jar = ensure_jar()
    targets = [(jar, plugins / JAR_NAME)] + [(s, macros / s.name) for s in fiji_scripts()]
    for _, target in targets:
        rel = str(target.relative_to(folder))
        if target.exists() and rel not in previous and not force:
            raise UserError(f"'{target}' exists and was not installed by micro-sam-fiji: move it away or pass --force")
    for source, target in targets:
        atomic_write(target, lambda tmp, source=source: shutil.copyfile(source, tmp))
    files = [target.relative_to(folder) for _, target in targets]
    lines = ["# written by microsam-fiji install-fiji; read by the micro-sam APG plugin",
             f"python={_escape(python or sys.executable)}",
             f"model={_escape(_model_setting(model))}",
             f"device={device or ''}",
             f"version={package_version()}",
             f"files={','.join(str(f) for f in files)}"]
    # UTF-8, which Config.java reads with a UTF-8 Reader (Properties' own InputStream default is ISO-8859-1)
    atomic_write(config_path, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    return Installation(folder=folder, files=files, config=config_path)


def uninstall(folder: str | Path) -> Installation:
    folder = Path(folder).expanduser().resolve()
    config_path = _plugins_folder(folder) / CONFIG_NAME
    if not config_path.is_file():
        raise UserError(f"no micro-sam-fiji installation in '{folder}' (no plugins/{CONFIG_NAME})")
    removed = []
    for rel in filter(None, read_config(config_path).get("files", "").split(",")):
        path = (folder / rel).resolve()
        if folder not in path.parents:  # the list is ours, but never delete outside the folder
            continue
        if path.is_file():
            path.unlink()
            removed.append(Path(rel))
    config_path.unlink()
    return Installation(folder=folder, files=removed, config=config_path)
