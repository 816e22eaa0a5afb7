"""``microsam-fiji install-fiji``: the ImageJ plugin into a Fiji.app or ImageJ folder (see :mod:`.install`)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser(
        "install-fiji", help="add the micro-sam APG command to a Fiji.app or ImageJ folder",
        description="Put the micro-sam APG plugin into DIR/plugins and the fiji-scripts into DIR/macros, and "
                    "record this Python (and the default model and device) for the plugin. Start Fiji as usual "
                    "afterwards: Plugins > Segmentation > micro-sam APG, or run(\"micro-sam APG\", \"...\") in "
                    "a macro. --uninstall removes exactly what was added.")
    p.add_argument("folder", type=Path, metavar="DIR", help="Fiji.app (or an ImageJ 1.x folder with plugins/)")
    p.add_argument("--model", default=None, help="default model for macros without model=[...] (default: demo)")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--force", action="store_true", help="replace macros of the same name not installed by us")
    p.add_argument("--uninstall", action="store_true", help="remove what install-fiji added")
    p.set_defaults(func=run_install)


def run_install(args: argparse.Namespace) -> int:
    from microsam_fiji.plugin.install import install, uninstall

    if args.uninstall:
        done = uninstall(args.folder)
        print(f"removed {len(done.files)} files and {done.config} from {done.folder}")
        return 0
    done = install(args.folder, model=args.model, device=args.device, force=args.force)
    print(f"installed the micro-sam APG plugin into {done.folder}: {', '.join(str(f) for f in done.files)}; "
          f"settings in {done.config}. Restart Fiji, then use Plugins > Segmentation > micro-sam APG.")
    return 0
