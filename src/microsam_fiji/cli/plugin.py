"""``microsam-fiji install-fiji``: the ImageJ plugin into a Fiji.app or ImageJ folder (see :mod:`.install`)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "install-fiji", help="add the micro-sam APG command to a Fiji.app or ImageJ folder",
        description="Put the micro-sam APG plugin into DIR/plugins, the fiji-scripts into DIR/macros and their "
                    "menu entries into DIR/plugins/micro-sam, and record this Python (and the default model and "
                    "device) for the plugin. Start Fiji as usual afterwards: Plugins > Segmentation > micro-sam "
                    "APG, or run(\"micro-sam APG\", \"...\") in a macro; the scripts are Plugins > micro-sam > "
                    "Segment Folder and Segment With CLI. Installing again keeps files you "
                    "edited (the new version goes beside them as NAME.new); --uninstall removes exactly what was "
                    "added, except files you edited.")
    p.add_argument("folder", type=Path, metavar="DIR", help="Fiji.app (or an ImageJ 1.x folder with plugins/)")
    p.add_argument("--model", default=None, help="default model for macros without model=[...] (default: demo)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--force", action="store_true",
                   help="replace files of the same name not installed by us, and installed macros you edited")
    p.add_argument("--uninstall", action="store_true", help="remove what install-fiji added (not files you edited)")
    p.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    """Install or uninstall; one line for the result and one per file kept or replaced.

    Args:
        args: the parsed ``install-fiji`` arguments.

    Returns:
        0 (errors are :class:`UserError`, exit 2)."""
    from microsam_fiji.installer.install import SUBMENU, install, uninstall

    if args.uninstall:
        done = uninstall(args.folder)
        for rel, _ in done.kept:
            print(f"kept {rel}: edited since it was installed (yours now)")
        print(f"removed {len(done.files)} files and {done.config} from {done.folder}")
        return 0
    done = install(args.folder, model=args.model, device=args.device, force=args.force)
    for rel, beside in done.kept:
        if beside is None:
            print(f"kept {rel}: edited since it was installed, and no longer shipped")
        else:
            print(f"kept {rel}: edited since it was installed; the new version is {beside} (--force replaces it)")
    for rel in done.replaced:
        print(f"replaced {rel} (--force), which had been edited or was not installed by micro-sam-fiji")
    for rel in done.removed:
        print(f"removed {rel}: no longer shipped")
    print(f"installed the micro-sam APG plugin into {done.folder}: {', '.join(str(f) for f in done.files)}; "
          f"settings in {done.config}. Restart Fiji, then use Plugins > Segmentation > micro-sam APG; the macros "
          f"are in Plugins > {SUBMENU}.")
    return 0
