"""Progress reports and cancellation points inside the torch passes: a forward pre-hook on each block of the
image encoder and on each stage of the instance decoder calls :func:`microsam_fiji.core.progress.report`, so a
long encoding (vit_b on a laptop CPU: tens of seconds) shows a fraction that moves and stops within one block's
time when the user presses Esc (the reporter raises ``Cancelled`` from inside the pass)."""
from __future__ import annotations

from typing import Any

from microsam_fiji.core.progress import report


def encoder_units(encoder: Any) -> list[Any]:
    """The encoder's blocks in run order: ViT's ``blocks`` (vit_b/l/h), TinyViT's stages' blocks (vit_t)."""
    if hasattr(encoder, "blocks"):
        units = list(encoder.blocks)
    else:
        units = [block for layer in getattr(encoder, "layers", []) for block in getattr(layer, "blocks", [layer])]
    neck = getattr(encoder, "neck", None)
    return units + ([neck] if neck is not None else [])


def decoder_units(decoder: Any) -> list[Any]:
    """The instance decoder's stages in run order (micro-sam's ``DecoderAdapter._forward_impl``)."""
    names = ("deconv1", "deconv2", "deconv3", "deconv4", "base")
    units = [getattr(decoder, n) for n in names if hasattr(decoder, n)]
    inner = getattr(decoder, "decoder", None)
    # torch_em's Decoder runs sampler i, then block i, level by level
    for sampler, block in zip(getattr(inner, "samplers", []), getattr(inner, "blocks", [])):
        units += [sampler, block]
    units += [getattr(decoder, n) for n in ("deconv_out", "decoder_head", "out_conv") if hasattr(decoder, n)]
    return units


def add_progress_hooks(module: Any, units: list[Any], stage: str) -> list[Any]:
    """Report ``stage`` with (i, n) before unit i of ``module`` runs and (n, n) after the whole pass.

    Args:
        module: the pass (its forward runs ``units`` in order).
        units: submodules of ``module``.
        stage: the text the reporter shows ("encoding the image").

    Returns:
        The hook handles (``handle.remove()`` takes a hook off)."""
    n = len(units)
    handles = [unit.register_forward_pre_hook(lambda _m, _a, i=i: report(stage, i, n)) for i, unit in enumerate(units)]
    handles.append(module.register_forward_hook(lambda _m, _a, _o: report(stage, n, n)))
    return handles
