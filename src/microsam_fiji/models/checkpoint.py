"""A micro-sam finetuning checkpoint (``{"model_state", "decoder_state"}``) as a :class:`Model`."""
from __future__ import annotations

import os
import re
from pathlib import Path

from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.models.model import Model, resolve_device

def infer_model_type(model_state: dict) -> str:
    """vit_t / vit_b / vit_l / vit_h from the image encoder's weight shapes (as micro-sam itself decides)."""
    from microsam_fiji.core.micro_sam_compat import validate_model_type

    try:
        return validate_model_type(model_state)
    except (KeyError, AttributeError, IndexError, TypeError):  # an unknown encoder width, or no tensors
        raise UserError("cannot tell the model type from the checkpoint's weights: pass --model-type") from None



def read_checkpoint(path: Path):
    from microsam_fiji.core.micro_sam_compat import load_checkpoint as read_micro_sam_checkpoint

    try:
        return read_micro_sam_checkpoint(str(path))
    except Exception as err:  # torch raises many kinds for a file that is not a checkpoint
        raise UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__}): pass a micro-sam "
                        "finetuning checkpoint (.pt) or a Model Zoo package (.zip)") from None



def _not_a_checkpoint(path: Path, reason: str) -> UserError:
    return UserError(f"'{path.name}' is not a micro-sam checkpoint with an instance decoder: {reason}: pass a micro-sam "
                     "finetuning checkpoint (.pt with model_state and decoder_state) or a Model Zoo package (.zip)")


def mismatch(err: BaseException) -> str:
    """What torch's ``load_state_dict`` (or micro-sam's decoder loader) found wrong, in one short line: the count
    of missing, unexpected and mis-shaped weights with the first of each, instead of thousands of names."""
    text = str(err)
    parts = []
    for label, pattern in (("missing", r'Missing key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)'),
                           ("unexpected", r'Unexpected key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)')):
        found = re.search(pattern, text)
        if found:
            names = re.findall(r'"([^"]*)"', found.group(1))
            parts.append(f"{len(names)} {label} weight{'s' if len(names) > 1 else ''} (e.g. {names[0]})")
    sizes = re.findall(r"size mismatch for ([^:]+): copying a param with shape (torch\.Size\(\[[^\]]*\]\)) from "
                       r"checkpoint, the shape in current model is (torch\.Size\(\[[^\]]*\]\))", text)
    if sizes:
        name, got, want = (s.replace("torch.Size(", "").rstrip(")") for s in sizes[0])
        parts.append(f"{len(sizes)} weight{'s' if len(sizes) > 1 else ''} of the wrong size (e.g. {name}: "
                     f"{got} where {want} belongs)")
    decoder = re.search(r"The parameters for '([^']+)' could not be found or has a size mismatch", text)
    if decoder:
        parts.append(f"weight {decoder.group(1)} is missing or of the wrong size")
    if parts:
        return "; ".join(parts)
    return one_line(err, limit=200)


def _decoder_state(path: Path, state) -> dict:
    decoder = state.get("decoder_state") if isinstance(state, dict) else None
    if decoder is None:
        raise UserError(
            f"checkpoint '{path.name}' has no instance decoder ('decoder_state'): APG and AIS need a model trained "
            "with one, e.g. a micro-sam finetuning checkpoint or a *_lm model"
        )
    if not isinstance(decoder, dict) or not decoder:
        raise _not_a_checkpoint(path, f"its decoder_state is {'empty' if isinstance(decoder, dict) else 'no state dict'}")
    return decoder


def load_checkpoint(path: str | os.PathLike, model_type: str | None = None, device: str | None = None,
                    source_name: str | None = None) -> Model:
    from microsam_fiji.core.micro_sam_compat import micro_sam_util

    get_sam_model = micro_sam_util().get_sam_model
    path = Path(path)
    device = resolve_device(device)
    state, model_state = read_checkpoint(path)
    decoder_state = _decoder_state(path, state)
    if not isinstance(model_state, dict) or not model_state:
        raise _not_a_checkpoint(path, "it holds no SAM weights (model_state)")
    inferred = infer_model_type(model_state)
    model_type = model_type or inferred
    if model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    try:
        predictor = get_sam_model(model_type=model_type, checkpoint_path=str(path), device=device)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise _not_a_checkpoint(path, f"its SAM weights do not fit a {model_type} model ({mismatch(err)})") from None
    encoder = predictor.model.image_encoder  # the torch one: a backend may put another into the predictor

    def build_decoder():
        from micro_sam.instance_segmentation import get_decoder

        try:
            return get_decoder(encoder, decoder_state, device)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise _not_a_checkpoint(path, f"its decoder_state does not fit micro-sam's instance decoder "
                                          f"({mismatch(err)})") from None

    return Model(predictor=predictor, decoder=None, model_type=model_type, source=source_name or str(path),
                 device=str(device), build_decoder=build_decoder, decoder_state=decoder_state)
