"""CLI commands for models and Model Zoo packages: ``models`` (what ``--model`` accepts), ``export``
(checkpoint -> package zip) and ``validate``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub) -> None:
    from microsam_fiji.core.params import ALIASES
    from microsam_fiji.zoo.description import DEFAULT_TAGS
    from microsam_fiji.zoo.weights import WEIGHT_FORMATS

    p = sub.add_parser(
        "export", help="export a micro-sam checkpoint as a BioImage Model Zoo package with APG settings",
        description="Write a BioImage Model Zoo package (spec 0.5 zip) of a micro-sam finetuning checkpoint with "
                    "an instance decoder. Any Model Zoo tool (bioimageio.core, ilastik, deepImageJ) can run its "
                    "tensor path (image -> foreground / center / boundary distance maps); micro-sam-fiji and "
                    "micro-sam run full APG/AIS from it with the parameters stored in it.")
    p.add_argument("--checkpoint", required=True, type=Path, help="micro-sam finetuning checkpoint (.pt)")
    p.add_argument("--model-type", choices=("vit_t", "vit_b", "vit_l", "vit_h"),
                   help="SAM encoder type (default: inferred from the weights)")
    p.add_argument("--name", required=True, help="package name (letters, digits, spaces, _+-())")
    p.add_argument("--out", required=True, type=Path, help="output package, e.g. my-model.zip")
    p.add_argument("--test-image", type=Path,
                   help="2D grayscale or RGB image for the test tensors and cover (default: a built-in nuclei "
                        "crop); use one typical for the model")
    p.add_argument("--mode", choices=("apg", "ais"), default="apg", help="default mode stored in the package")
    p.add_argument("--apg-param", action="append", default=[], metavar="NAME=VALUE",
                   help="APG default to store, repeatable, e.g. --apg-param center=0.4 (short names: "
                        f"{', '.join(ALIASES)})")
    p.add_argument("--ais-param", action="append", default=[], metavar="NAME=VALUE",
                   help="AIS default to store, repeatable")
    p.add_argument("--test-labels", type=Path,
                   help="ground-truth instance labels of the test image: mSA and object counts go into the "
                        "documentation's Validation section")
    p.add_argument("--author", action="append", default=[], metavar="'NAME; github_user=USER; ...'",
                   help="author, repeatable: the name, then optional affiliation=, github_user=, orcid=, email= "
                        "separated by ';' (default: your user name, which validate flags)")
    p.add_argument("--maintainer", action="append", default=[], metavar="'NAME; github_user=USER'",
                   help="maintainer, repeatable, as --author (the Model Zoo asks for one with github_user)")
    p.add_argument("--uploader", metavar="'EMAIL; NAME'", help="who uploads the package to the Model Zoo")
    p.add_argument("--version", dest="model_version", metavar="VERSION", help="version of the model, e.g. 1.0.0")
    p.add_argument("--git-repo", metavar="URL", help="repository of the model's training code")
    p.add_argument("--training-data", metavar="DATASET_ID_OR_URL",
                   help="the training data: a Model Zoo dataset id (e.g. 'amazing-dataset' or "
                        "'amazing-dataset/1'), a DOI or an https:// URL")
    p.add_argument("--training", metavar="'epochs=N; batch_size=N; ...'",
                   help="training details for the model card: epochs, batch_size, learning_rate, schedule, loss, "
                        "optimizer, regularization, hours, preprocessing (KEY=VALUE separated by ';')")
    p.add_argument("--documentation", type=Path, metavar="FILE.md",
                   help="your own Markdown text, added to the generated documentation")
    p.add_argument("--cover", action="append", default=[], type=Path,
                   help="another cover image (PNG/JPEG, at most 500 KB, 2:1 or 1:1), repeatable")
    p.add_argument("--cite", action="append", default=[], metavar="'TEXT; doi=10.x/y'",
                   help="another citation, repeatable: 'TEXT; doi=...' or 'TEXT; url=https://...'")
    p.add_argument("--license", default="CC-BY-4.0", help="SPDX license id (default CC-BY-4.0)")
    p.add_argument("--tag", action="append", default=[], help=f"extra tag, repeatable (always: "
                                                               f"{', '.join(DEFAULT_TAGS)})")
    p.add_argument("--description", help="one-line description (at most 1024 characters)")
    p.add_argument("--weight-format", action="append", choices=WEIGHT_FORMATS, dest="weight_formats",
                   help="weight formats to include, repeatable (default: all; pytorch_state_dict always)")
    p.set_defaults(func=run_export)

    v = sub.add_parser(
        "validate", help="validate a Model Zoo package (bioimageio.spec + bioimageio.core test_model, offline)",
        description="Check a package: bioimageio.spec format validation, bioimageio.core's test_model for every "
                    "weight format (reproduces the test outputs, tries several input sizes), the micro-sam parts "
                    "(config.micro_sam, hash-checked weights and attachment) and the upload points. Running the "
                    "model executes code: ONNX and TorchScript weights run graphs only; pytorch_state_dict weights "
                    "run the package's architecture, tested only where it is the one micro-sam-fiji or micro-sam "
                    "writes (otherwise a failed check, or --run-package-code). Exit status 0 = passed, 1 = failed.")
    # a str, not a Path: Path("https://x") is "https:/x", and a Model Zoo id or URL is named as given
    v.add_argument("package", help="package zip, unpacked folder or its rdf.yaml")
    v.add_argument("--weight-format", choices=WEIGHT_FORMATS, help="test only this weight format")
    v.add_argument("--static", action="store_true",
                   help="do not run the model (no test_model): format, micro-sam parts and upload points only; "
                        "seconds instead of minutes for a large model while you edit its metadata")
    v.add_argument("--run-package-code", action="store_true",
                   help="also test weights whose test runs Python from the package that is neither micro-sam-fiji's "
                        "nor micro-sam's architecture (Keras weights, another architecture): only for a package "
                        "you trust")
    v.set_defaults(func=run_validate)

    m = sub.add_parser(
        "models", help="list the models --model accepts by name (micro-sam registry, Model Zoo ids, cache, demo)",
        description="The names --model accepts: the bundled demo, micro-sam's registry names (with their Model "
                    "Zoo ids, whether they have the instance decoder APG and AIS need, and whether micro-sam's "
                    "cache already holds them, else they are downloaded once), and other files in that cache. "
                    "--model also takes a checkpoint (.pt), a package (.zip, folder, rdf.yaml), any Model Zoo "
                    "id or a URL.")
    m.set_defaults(func=run_models)

    c = sub.add_parser(
        "convert-checkpoint", help="rewrite a checkpoint you trust as weights only (runs the file's code)",
        description="Every command reads checkpoints as weights only (torch.load(weights_only=True)) and refuses a "
                    "file that holds other Python objects, because loading those runs code from the file. For a "
                    "file you made yourself or whose author you trust (e.g. a torch_em trainer's best.pt): this "
                    "loads it with full unpickling -- RUNNING ANY CODE IT HOLDS -- and writes its model_state and "
                    "decoder_state (and plain values) to OUT as a weights-only checkpoint every command takes.")
    c.add_argument("checkpoint", type=Path, help="the checkpoint to convert")
    c.add_argument("out", type=Path, help="the weights-only checkpoint to write (.pt)")
    c.add_argument("--run-its-code", action="store_true", required=True,
                   help="required: you accept that loading CHECKPOINT runs whatever code it holds")
    c.set_defaults(func=run_convert)


def run_export(args: argparse.Namespace) -> int:
    from microsam_fiji.core.params import parse_assignments
    from microsam_fiji.zoo.export import export_package_report
    from microsam_fiji.zoo.weights import WEIGHT_FORMATS

    formats = tuple(dict.fromkeys(["pytorch_state_dict", *(args.weight_formats or WEIGHT_FORMATS)]))
    report = export_package_report(
        args.checkpoint, args.out, name=args.name, model_type=args.model_type, test_image=args.test_image,
        apg_params=parse_assignments(args.apg_param), ais_params=parse_assignments(args.ais_param),
        mode=args.mode, authors=args.author, license=args.license, tags=args.tag, description=args.description,
        weight_formats=formats, progress=lambda msg: print(f"export: {msg}", file=sys.stderr),
        maintainers=args.maintainer, uploader=args.uploader, version=args.model_version, git_repo=args.git_repo,
        training_data=args.training_data, test_labels=args.test_labels, documentation=args.documentation,
        covers=args.cover, cite=args.cite, training=args.training)
    print(f"{report.path}: weights {', '.join(report.weight_formats)}; {report.n_objects} objects on the test "
          f"image; largest difference to micro-sam "
          + ", ".join(f"{wf} {d:.1e}" for wf, d in report.max_abs_diff.items()))
    for wf, why in report.skipped.items():
        print(f"  {wf} left out: {why}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(f"next: microsam-fiji validate {report.path}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from microsam_fiji.zoo.validate import validate_package

    result = validate_package(args.package, weight_format=args.weight_format, static=args.static,
                              run_package_code=args.run_package_code,
                              progress=lambda line: print(f"validate: {line}", file=sys.stderr, flush=True))
    print(result.format())
    return 0 if result.passed else 1


def models_table() -> str:
    from microsam_fiji.models.demo import DEMO_CHECKPOINT, DEMO_NAME
    from microsam_fiji.models.registry import registry_models

    rows = [(DEMO_NAME, "-", "yes", f"bundled ({DEMO_CHECKPOINT.name}; a pipeline demo only)")]
    known: set[Path] = set()
    for m in registry_models():
        if m.cached is not None:
            known.add(m.cached)
            known.add(m.cached.with_name(m.cached.name + "_decoder"))
        rows.append((m.name, m.zoo_id or "-", "yes" if m.has_decoder else "no (prompts only)",
                     str(m.cached.parent) if m.cached else "download on first use (needs network)"))
    cache = _micro_sam_model_cache()
    extra = sorted(p for p in cache.glob("*") if p.is_file() and p not in known) if cache.is_dir() else []
    rows += [(p.name, "-", "?", f"in micro-sam's cache (pass --model {p})") for p in extra]
    header = ("NAME", "MODEL ZOO ID", "APG / AIS", "WHERE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in [header, *rows]]
    lines += ["", "Also accepted: a micro-sam checkpoint (.pt), a Model Zoo package (.zip, unpacked folder, rdf.yaml) "
                  "from microsam-fiji or micro-sam, any Model Zoo id or URL (downloaded by bioimageio.spec).",
              f"micro-sam's cache: {cache}"]
    return "\n".join(lines)


def _micro_sam_model_cache() -> Path:
    from micro_sam.util import models

    return Path(models().abspath)


def run_models(args: argparse.Namespace) -> int:
    print(models_table())
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from microsam_fiji.models.checkpoint import convert_trusted_checkpoint

    out = convert_trusted_checkpoint(args.checkpoint, args.out)
    print(f"wrote {out} (weights only: model_state, decoder_state and plain values)")
    return 0
