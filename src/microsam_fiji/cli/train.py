"""``microsam-fiji train``: fine-tune micro-sam on annotated images (:func:`microsam_fiji.finetune`)."""
from __future__ import annotations

import sys
from pathlib import Path

from microsam_fiji.cli.arguments import pair


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="fine-tune micro-sam (SAM + instance decoder) on your annotated images",
        description="Fine-tune a micro-sam model for APG/AIS on annotated images with micro-sam's trainer "
                    "(train_sam with the instance decoder). Images and labels are paired by name: x.tif with "
                    "x_labels.tif or x_RoiSet.zip (what segment, prompt and Fiji write), or x.tif in both folders. "
                    "Writes a micro-sam finetuning checkpoint (the best validation so far, from the first epoch on) "
                    "that --model, micro-sam and export take; export records how it was trained. Ctrl-C stops and "
                    "keeps it; --resume continues a stopped run.")
    p.add_argument("--images", type=Path, required=True, metavar="DIR", help="folder of images")
    p.add_argument("--labels", type=Path, metavar="DIR",
                   help="folder of label images / RoiSet.zip files (default: --images)")
    p.add_argument("--out", type=Path, required=True, metavar="MODEL.pt", help="the checkpoint to write")
    p.add_argument("--model", metavar="START",
                   help="start model: demo (default), a checkpoint, a Model Zoo package or id, a micro-sam name")
    p.add_argument("--minutes", type=float, default=15.0,
                   help="time budget; training stops at the last epoch that fits (default: 15; 0: no budget, "
                        "give --iterations)")
    p.add_argument("--iterations", type=int, help="iterations to train (with --minutes: whichever ends first)")
    p.add_argument("--patch", type=pair, metavar="Y,X",
                   help="training patch (default: the largest image side, at most 1024)")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the images held out for validation (default: 0.2; 0: validate on the training "
                        "images)")
    p.add_argument("--val-images", type=Path, metavar="DIR", help="a validation set instead of a split")
    p.add_argument("--val-labels", type=Path, metavar="DIR", help="its labels (default: --val-images)")
    p.add_argument("--freeze", action="append", metavar="PART",
                   help="image_encoder, prompt_encoder or mask_decoder; repeatable; 'none' trains all (default: the "
                        "image encoder on a CPU, nothing on a GPU)")
    p.add_argument("--peft", choices=("attention", "bias", "layernorm", "blocks"),
                   help="train only part of the image encoder (micro-sam's PEFT; vit_b and larger)")
    p.add_argument("--peft-layers", type=lambda t: [int(v) for v in t.split(",")], metavar="I,J,...",
                   help="the encoder blocks --peft applies to (default: all)")
    p.add_argument("--lr", type=float, help="learning rate (default: 1e-4 with a frozen encoder, else 1e-5)")
    p.add_argument("--objects", type=int, help="objects per iteration (default: 5 on a CPU, 25 on a GPU)")
    p.add_argument("--prompt-rounds", type=int, help="rounds of iterative prompting (default: 4 CPU, 8 GPU)")
    p.add_argument("--epoch", type=int, metavar="N", help="iterations between validations (default: 4 CPU, 50 GPU)")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: a GPU where there is one)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--channel", type=int,
                   help="channel of multi-channel images (1-based, as in ImageJ; default: the first)")
    p.add_argument("--no-eval", action="store_true",
                   help="skip APG's mSA on the validation images before and after (saves two APG runs per image)")
    p.add_argument("--describe", metavar="TEXT", help="a sentence about the data for the provenance")
    p.add_argument("--data-source", metavar="ID_OR_URL",
                   help="a Model Zoo dataset id, DOI or URL of the data (export records it as training_data)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue the stopped run that writes --out")
    g.add_argument("--overwrite", action="store_true", help="replace --out (and a stopped run's work folder)")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from microsam_fiji.core.errors import UserError
    from microsam_fiji.training import Step, finetune

    freeze = args.freeze
    if freeze is not None and [f.lower() for f in freeze] == ["none"]:
        freeze = []
    if args.minutes < 0:
        raise UserError(f"--minutes {args.minutes}: give a positive budget, or 0 with --iterations")

    def show(step: Step) -> None:
        print(f"[{step.line()}]" if step.epoch_end else step.line(), flush=True)

    result = finetune(args.images, args.labels, args.out, model=args.model, minutes=args.minutes or None,
                      n_iterations=args.iterations, patch_shape=args.patch, val_fraction=args.val_fraction,
                      val_images=args.val_images, val_labels=args.val_labels, freeze=freeze, peft=args.peft,
                      peft_layers=args.peft_layers, lr=args.lr, n_objects_per_batch=args.objects,
                      n_sub_iteration=args.prompt_rounds, iterations_per_epoch=args.epoch, device=args.device,
                      seed=args.seed, channel=args.channel, resume=args.resume, overwrite=args.overwrite,
                      evaluate=not args.no_eval, data_description=args.describe, data_source=args.data_source,
                      progress=show)
    score = "" if result.best_validation is None else f", best validation {result.best_validation:.4f}"
    msa = "" if result.msa_after is None else f", APG mSA on the validation images {result.msa_before} -> " \
                                              f"{result.msa_after}"
    print(f"{result.checkpoint}: {result.iterations} iterations in {result.minutes:.1f} min, stopped by "
          f"{result.stopped}{score}{msa}")
    if result.work_dir is not None:
        print(f"stopped: the best checkpoint so far is kept; continue with --resume (work folder {result.work_dir})",
              file=sys.stderr)
        return 130
    return 0
