"""A micro-sam finetuning checkpoint (``{"model_state", "decoder_state"}``) as a :class:`Model`."""
from __future__ import annotations

import os
from pathlib import Path

from microsam_fiji.core.errors import UserError
from microsam_fiji.models.model import Model, resolve_device

def infer_model_type(model_state: dict) -> str:
    """vit_t / vit_b / vit_l / vit_h from the image encoder's weight shapes (as micro-sam itself decides)."""
    from microsam_fiji.core.micro_sam_compat import validate_model_type

    try:
        return validate_model_type(model_state)
    except KeyError:
        raise UserError("cannot tell the model type from the checkpoint's weights: pass --model-type") from None



def read_checkpoint(path: Path):
    from microsam_fiji.core.micro_sam_compat import load_checkpoint as read_micro_sam_checkpoint

    try:
        return read_micro_sam_checkpoint(str(path))
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__}): pass a micro-sam "
                        "finetuning checkpoint (.pt) or a Model Zoo package (.zip)") from None



def load_checkpoint(path: str | os.PathLike, model_type: str | None = None, device: str | None = None,
                    source_name: str | None = None) -> Model:
    from micro_sam.instance_segmentation import get_decoder
    from micro_sam.util import get_sam_model

    path = Path(path)
    device = resolve_device(device)
    state, model_state = read_checkpoint(path)
    if "decoder_state" not in state:
        raise UserError(
            f"checkpoint '{path.name}' has no instance decoder ('decoder_state'): APG and AIS need a model trained "
            "with one, e.g. a micro-sam finetuning checkpoint or a *_lm model"
        )
    inferred = infer_model_type(model_state)
    model_type = model_type or inferred
    if model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    predictor = get_sam_model(model_type=model_type, checkpoint_path=str(path), device=device)
    decoder = get_decoder(predictor.model.image_encoder, state["decoder_state"], device)
    return Model(predictor=predictor, decoder=decoder, model_type=model_type,
                 source=source_name or str(path), device=str(device))
