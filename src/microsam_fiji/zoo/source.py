"""The export's source: a micro-sam finetuning checkpoint with an instance decoder, read and checked."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from microsam_fiji.core.errors import UserError


def read_source(checkpoint: Path, model_type: str | None) -> tuple[dict, dict, str]:
    """Read the checkpoint to export and settle its model type.

    Args:
        checkpoint: A micro-sam finetuning checkpoint (.pt) with a ``decoder_state``.
        model_type: The SAM encoder type the user named, or None to infer it from the weights.

    Returns:
        (the whole checkpoint state, its SAM ``model_state``, the model type: ``model_type`` or the inferred one).

    Raises:
        UserError: the file is missing, has no instance decoder, or its weights are not ``model_type``'s.
    """
    from microsam_fiji.models.checkpoint import infer_model_type, read_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint '{checkpoint}' not found: pass a micro-sam finetuning checkpoint (.pt)")
    state, model_state = read_checkpoint(checkpoint)
    if "decoder_state" not in state:
        raise UserError(f"checkpoint '{checkpoint.name}' has no instance decoder ('decoder_state'): APG needs a "
                        "model trained with one (micro-sam finetuning with the UNETR decoder)")
    inferred = infer_model_type(model_state)
    # a suffix (vit_b_lm) names a registry model, not another architecture: compare the encoder type alone
    if model_type is not None and model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    return state, model_state, model_type or inferred


def uses_conv_transpose(decoder_state: Mapping) -> bool:
    """Whether the UNETR decoder of ``decoder_state`` upsamples with transposed convolutions (an argument of the
    packaged architecture), decided as ``micro_sam.instance_segmentation.get_unetr`` decides it."""
    return any(".block." in k for k in decoder_state if k.startswith("decoder.samplers"))
