"""A micro-sam finetuning checkpoint (``{"model_state", "decoder_state"}``) as a :class:`Model`."""
from __future__ import annotations

import os
import re
from collections import OrderedDict
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



def _numpy_globals() -> list:
    """numpy's scalar, dtype and array reconstructors: a trainer's metrics (``best_metric``) are often numpy
    scalars. They build values only; whatever an array holds still passes torch's weights-only unpickler."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    found = [core.multiarray.scalar, core.multiarray._reconstruct, np.ndarray, np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return found


def _code_it_needs(path: Path) -> str:
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # noqa: BLE001 - an old (non-zip) torch file: torch cannot list them without unpickling
        names = []
    return f" ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})" if names else ""


def read_state(path: str | os.PathLike) -> dict:
    """A checkpoint file's contents, read with ``torch.load(weights_only=True)``: tensors, containers, plain
    values and numpy scalars only. No code in the file runs: a file that needs more (a pickled object, which a
    stranger's checkpoint can use to run commands when it is loaded) is refused in one line.

    Args:
        path: the ``.pt`` file.

    Returns:
        What the file holds (a dict for every micro-sam checkpoint).

    Raises:
        UserError: unreadable, or it holds Python objects beyond weights."""
    import pickle

    import torch

    path = Path(path)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only load failed" not in str(err).lower():
            raise _unreadable(path, err) from None
        raise UserError(
            f"'{path.name}' holds Python objects besides weights{_code_it_needs(path)}, and loading them would run "
            "code from the file: refused. A micro-sam checkpoint needs none; if you made the file yourself or trust "
            f"its author, convert it once with 'microsam-fiji convert-checkpoint {path.name} OUT.pt "
            "--run-its-code'") from None
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise _unreadable(path, err) from None


def _unreadable(path: Path, err: BaseException) -> UserError:
    return UserError(f"'{path}' is not a readable PyTorch checkpoint ({type(err).__name__}): pass a micro-sam "
                     "finetuning checkpoint (.pt) or a Model Zoo package (.zip)")


def sam_state(state: dict) -> dict:
    """The SAM weights of a checkpoint's contents: ``model_state`` without micro-sam's training prefix
    ``sam.`` (a finetuning checkpoint), or the state itself (a plain SAM checkpoint), as micro-sam reads them.

    Args:
        state: what :func:`read_state` returned.

    Returns:
        The SAM model's state dict."""
    if isinstance(state, dict) and "model_state" in state:
        model_state = state["model_state"]
        if not isinstance(model_state, dict):
            return {}
        return OrderedDict((k[4:] if k.startswith("sam.") else k, v) for k, v in model_state.items())
    return state if isinstance(state, dict) else {}


def read_checkpoint(path: Path) -> tuple[dict, dict]:
    """(the checkpoint's contents, its SAM weights): :func:`read_state` and :func:`sam_state`."""
    state = read_state(path)
    return state, sam_state(state)


def _not_a_checkpoint(path: Path, reason: str) -> UserError:
    return UserError(f"'{path.name}' is not a micro-sam checkpoint with an instance decoder: {reason}: pass a "
                     "micro-sam finetuning checkpoint (.pt with model_state and decoder_state) or a Model Zoo package "
                     "(.zip)")


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
        what = "empty" if isinstance(decoder, dict) else "no state dict"
        raise _not_a_checkpoint(path, f"its decoder_state is {what}")
    return decoder


def load_checkpoint(path: str | os.PathLike, model_type: str | None = None, device: str | None = None,
                    source_name: str | None = None) -> Model:
    """A :class:`Model` from a micro-sam finetuning checkpoint file, read without running any code in it
    (:func:`read_state`).

    Args:
        path: the ``.pt`` file (``model_state`` + ``decoder_state``).
        model_type: ``vit_t`` ... (None: from the weights).
        device: where the model runs (None: a GPU where there is one).
        source_name: what the model is called in messages and results (default: the path).

    Returns:
        The model."""
    path = Path(path)
    return model_from_state(read_state(path), model_type, device, source_name or str(path), path.name)


def model_from_state(state: dict, model_type: str | None, device: str | None, source: str, name: str) -> Model:
    """A :class:`Model` from a checkpoint's contents (already read): micro-sam's SAM model and instance decoder
    are built and handed the state dicts.

    Args:
        state: ``{"model_state": SAM weights (``sam.`` prefixes allowed), "decoder_state": UNETR decoder}``.
        model_type: ``vit_t`` ... (None: from the weights).
        device: where the model runs.
        source: the model's source as results name it.
        name: the file or package named in error messages.

    Returns:
        The model (its decoder is built on first use)."""
    from microsam_fiji.core.micro_sam_compat import sam_predictor

    label = Path(name)
    device = resolve_device(device)
    decoder_state = _decoder_state(label, state)
    model_state = sam_state(state)
    if not model_state:
        raise _not_a_checkpoint(label, "it holds no SAM weights (model_state)")
    inferred = infer_model_type(model_state)
    model_type = model_type or inferred
    if model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    try:
        predictor = sam_predictor(model_state, model_type, device, source)
    except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise _not_a_checkpoint(label, f"its SAM weights do not fit a {model_type} model ({mismatch(err)})") from None
    encoder = predictor.model.image_encoder  # the torch one: a backend may put another into the predictor

    def build_decoder():
        from micro_sam.instance_segmentation import get_decoder

        try:
            return get_decoder(encoder, decoder_state, device)
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as err:
            raise _not_a_checkpoint(label, f"its decoder_state does not fit micro-sam's instance decoder "
                                           f"({mismatch(err)})") from None

    return Model(predictor=predictor, decoder=None, model_type=model_type, source=source,
                 device=str(device), build_decoder=build_decoder, decoder_state=decoder_state)


def convert_trusted_checkpoint(source: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Rewrite a checkpoint the user trusts as one :func:`read_state` reads: its ``model_state``,
    ``decoder_state`` and plain values (numbers, strings), written atomically. **Loading ``source`` runs any code
    it holds** (full unpickling): the CLI asks for ``--run-its-code``.

    Args:
        source: the checkpoint (e.g. torch_em's ``best.pt``).
        out: where the weights-only checkpoint goes.

    Returns:
        ``out``."""
    import torch

    from microsam_fiji.core.tiff_io import atomic_write

    source = Path(source)
    if not source.is_file():
        raise UserError(f"checkpoint '{source}' not found: check the path")
    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a file that is not a checkpoint
        raise _unreadable(source, err) from None
    if not isinstance(state, dict) or "model_state" not in state:
        raise _not_a_checkpoint(source, "it holds no model_state")
    kept = {k: v for k, v in state.items()
            if k in ("model_state", "decoder_state") or isinstance(v, (int, float, str, bool))}
    return atomic_write(out, lambda tmp: torch.save(kept, tmp))
