"""The package's weights: the ``pytorch_state_dict`` ones (the architecture's state dict, the SAM attachment,
the architecture file and its environment) and the TorchScript / ONNX ones converted from them."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Callable, Mapping, Sequence

from microsam_fiji.core.errors import UserError, one_line
from microsam_fiji.models.package_config import (
    DECODER_PREFIX,
    ENCODER_PREFIX,
    SAM_ATTACHMENT,
    WEIGHTS_FILE,
)

WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")
TORCHSCRIPT_FILE = "weights_torchscript.pt"
ONNX_FILE = "weights.onnx"
ONNX_OPSET = 18
ARCHITECTURE_FILE = "microsam_apg_architecture.py"  # zoo/architecture.py as the package carries it
ARCHITECTURE_CALLABLE = "InstanceMaps"


def package_weights(model_state: Mapping, decoder_state: Mapping) -> dict:
    """The architecture's state dict: SAM image encoder + UNETR decoder, float32.

    Args:
        model_state: micro-sam's SAM state (keys ``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``).
        decoder_state: micro-sam's UNETR decoder state.

    Returns:
        The encoder's tensors under ``ENCODER_PREFIX`` and the decoder's under ``DECODER_PREFIX``.
    """
    weights = {ENCODER_PREFIX + k[len("image_encoder."):]: v.float() for k, v in model_state.items()
               if k.startswith("image_encoder.")}
    weights.update({DECODER_PREFIX + k: v.float() for k, v in decoder_state.items()})
    return weights


def sam_parts(model_state: Mapping) -> dict:
    """What APG needs of SAM beyond the tensor path (prompt encoder, mask decoder), float32: the attachment."""
    return {k: v.float() for k, v in model_state.items() if not k.startswith("image_encoder.")}


def write_environment(path: Path, model_type: str) -> Path:
    """The conda environment the ``pytorch_state_dict`` weights declare: micro-sam (this version or newer)."""
    from importlib.metadata import version

    lines = ["name: micro-sam-apg", "channels:", "  - conda-forge", "dependencies:", "  - python>=3.10",
             f"  - micro_sam>={version('micro_sam')}", "  - pytorch", "  - torchvision"]
    if model_type.startswith("vit_t"):  # micro-sam's vit_t is MobileSAM's TinyViT
        lines += ["  - pip", "  - pip:", "    - mobilesam-mirror"]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_weight_files(folder: Path, model_state: Mapping, decoder_state: Mapping,
                       model_type: str) -> dict[str, Path]:
    """Write the ``pytorch_state_dict`` weights and what they need into ``folder``.

    Args:
        folder: Where the package is being put together.
        model_state: micro-sam's SAM state of the checkpoint.
        decoder_state: micro-sam's UNETR decoder state of the checkpoint.
        model_type: The SAM encoder type (the environment differs for vit_t).

    Returns:
        The written files by role: ``weights``, ``sam`` (the attachment), ``architecture``, ``environment``.
    """
    import torch

    from microsam_fiji.zoo import architecture

    files = {"weights": folder / WEIGHTS_FILE, "sam": folder / SAM_ATTACHMENT,
             "architecture": folder / ARCHITECTURE_FILE}
    torch.save(package_weights(model_state, decoder_state), files["weights"])
    torch.save(sam_parts(model_state), files["sam"])
    shutil.copyfile(architecture.__file__, files["architecture"])
    files["environment"] = write_environment(folder / "environment.yaml", model_type)
    return files


def state_dict_weights(files: Mapping[str, Path], architecture_kwargs: Mapping):
    """The ``pytorch_state_dict`` entry of the package's weights.

    Args:
        files: The files :func:`write_weight_files` wrote.
        architecture_kwargs: The architecture's arguments (``model_type``, ``use_conv_transpose``).

    Returns:
        A ``PytorchStateDictWeightsDescr`` with the weights' sha256, the architecture and its environment.
    """
    import torch
    from bioimageio.spec.model import v0_5 as spec

    return spec.PytorchStateDictWeightsDescr(
        source=files["weights"], sha256=spec.Sha256(sha256(files["weights"])),
        architecture=spec.ArchitectureFromFileDescr(
            source=files["architecture"], sha256=spec.Sha256(sha256(files["architecture"])),
            callable=spec.Identifier(ARCHITECTURE_CALLABLE),
            kwargs=dict(architecture_kwargs)),
        pytorch_version=spec.Version(torch.__version__.split("+")[0]),
        # no sha256 here: bioimageio.spec 0.5.12 then looks the file up in its known files and, offline, fails
        dependencies=spec.FileDescr(source=files["environment"]),
    )


def convert(descr, weight_format: str, folder: Path):
    """Weights in ``weight_format`` (torchscript or onnx) made from the pytorch_state_dict ones.

    Args:
        descr: The package's description with its pytorch_state_dict weights.
        weight_format: ``torchscript`` or ``onnx``.
        folder: Where the package is being put together; the converted file is written there.

    Returns:
        The weights' description entry, its sha256 recorded.
    """
    if weight_format == "torchscript":
        return trace_torchscript(descr, folder / TORCHSCRIPT_FILE)
    from bioimageio.spec.model import v0_5 as spec

    onnx = export_onnx(descr, folder / ONNX_FILE)
    # record hashes as for the other files (the converter leaves them to the packager's IO checks)
    data = onnx.external_data
    return spec.OnnxWeightsDescr(
        source=onnx.source, sha256=spec.Sha256(sha256(Path(str(onnx.source)))), parent=onnx.parent,
        opset_version=onnx.opset_version, comment=onnx.comment,
        external_data=None if data is None else spec.FileDescr(
            source=data.source, sha256=spec.Sha256(sha256(Path(str(data.source))))))


def export_onnx(descr, path: Path):
    """bioimageio.core's ``pytorch_to_onnx.convert`` (its sample inputs, dynamic shapes and dynamo choice), minus
    the forward pass it runs before ``torch.onnx.export`` and never uses (one more pass at 1024 x 1024: 20 s for
    vit_t on this CPU, and a failing export, e.g. without onnxscript, ran it before failing); export compares the
    ONNX weights' output with micro-sam's afterwards instead. Where bioimageio.core's helpers are not where this
    expects them (another version), its own converter runs.

    Args:
        descr: The package's description with its pytorch_state_dict weights.
        path: The ONNX file to write (its weights beside it, ``.data``, where the dynamo exporter writes them so).

    Returns:
        bioimageio.core's ``OnnxWeightsDescr`` for it (no hashes yet).
    """
    import torch
    from bioimageio.core import __version__ as core_version
    from bioimageio.core.backends.pytorch_backend import load_torch_model
    from bioimageio.core.weight_converters import _utils_torch_onnx as helpers
    from bioimageio.spec.model import v0_5 as spec

    needed = ("get_torch_sample_inputs", "get_dynamic_axes", "get_dynamic_shapes", "use_dynamo")
    if not all(hasattr(helpers, name) for name in needed):
        from bioimageio.core.weight_converters.pytorch_to_onnx import convert as to_onnx

        return to_onnx(descr, path, opset_version=ONNX_OPSET, devices=["cpu"])
    model = load_torch_model(descr.weights.pytorch_state_dict, load_state=True, devices=["cpu"]).eval()
    dynamo = bool(helpers.use_dynamo)
    with torch.no_grad():
        torch.onnx.export(model, helpers.get_torch_sample_inputs(descr), str(path), dynamo=dynamo,
                          external_data=dynamo, input_names=[str(d.id) for d in descr.inputs],
                          output_names=[str(d.id) for d in descr.outputs], dynamic_axes=helpers.get_dynamic_axes(descr),
                          dynamic_shapes=helpers.get_dynamic_shapes(descr), verbose=False, opset_version=ONNX_OPSET)
    data = path.with_suffix(path.suffix + ".data").absolute()
    if dynamo and not data.exists():
        raise FileNotFoundError(f"the ONNX exporter wrote no weights file {data.name}")
    return spec.OnnxWeightsDescr(source=path.absolute(), external_data=spec.FileDescr(source=data) if dynamo else None,
                                 parent="pytorch_state_dict", opset_version=ONNX_OPSET,
                                 comment=f"Converted with bioimageio.core {core_version}'s settings, dynamo={dynamo}.")


def trace_torchscript(descr, path: Path):
    """bioimageio.core's ``pytorch_to_torchscript.convert`` with ``use_tracing=True``, minus torch.jit.trace's
    re-run of the network to check the trace (two more forward passes at 1024 x 1024: minutes on a CPU); export
    compares the traced weights' output with micro-sam's afterwards instead.

    Args:
        descr: The package's description with its pytorch_state_dict weights.
        path: The TorchScript file to write.

    Returns:
        The ``TorchscriptWeightsDescr``.
    """
    import torch
    from bioimageio.core import __version__ as core_version
    from bioimageio.core.backends.pytorch_backend import load_torch_model
    from bioimageio.spec.model import v0_5 as spec

    model = load_torch_model(descr.weights.pytorch_state_dict, load_state=True, devices=["cpu"]).eval()
    example = [torch.from_numpy(a) for a in descr.get_input_test_arrays()]
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return spec.TorchscriptWeightsDescr(source=path.absolute(), sha256=spec.Sha256(sha256(path)),
                                        pytorch_version=spec.Version(torch.__version__.split("+")[0]),
                                        parent="pytorch_state_dict",
                                        comment=f"traced (bioimageio.core {core_version} converter's way)")


def convert_formats(descr, weight_formats: Sequence[str], folder: Path,
                    say: Callable[[str], None]) -> tuple[dict, dict[str, str]]:
    """Every weight format asked for, converted from the pytorch_state_dict weights of ``descr``.

    Args:
        descr: The package's description with its pytorch_state_dict weights.
        weight_formats: The formats to include (pytorch_state_dict is there already).
        folder: Where the package is being put together.
        say: Progress messages.

    Returns:
        (weight format -> its description entry, pytorch_state_dict first; weight format -> why it is missing).
    """
    weights = {"pytorch_state_dict": descr.weights.pytorch_state_dict}
    skipped: dict[str, str] = {}
    for wf in weight_formats:
        if wf == "pytorch_state_dict":
            continue
        say(f"converting to {wf}")
        try:
            weights[wf] = convert(descr, wf, folder)
        except Exception as err:  # noqa: BLE001 - a converter failing leaves a valid package without that format
            skipped[wf] = f"conversion failed: {one_line(err, 200)}"
    return weights, skipped


def quiet_converter_logs() -> None:
    """Silence bioimageio's loguru messages: export reports its own progress (``say``) instead."""
    from loguru import logger

    logger.disable("bioimageio")


# --- hashes ----------------------------------------------------------------------------------------------------------
# sha256 of the files a package records: the Model Zoo and the loader check each weight file and attachment.

def sha256(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in chunks (weight files are hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def hashed_file(path: Path):
    """A bioimageio ``FileDescr`` of ``path`` with its sha256 recorded."""
    from bioimageio.spec.model import v0_5 as spec

    return spec.FileDescr(source=path, sha256=spec.Sha256(sha256(path)))


# --- publisher -------------------------------------------------------------------------------------------------------
# What the publisher adds to the generated model card (a documentation file, covers), read and checked before
# the slow steps; and what export tells the publisher about the weight formats the package ends up with.

COVER_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg")  # what bioimageio.spec accepts for covers
STANDALONE_FORMATS = ("torchscript", "onnx")  # run without micro-sam (pytorch_state_dict imports it)


def read_publisher_files(documentation: str | Path | None, covers: Sequence[str | Path]) -> dict:
    """The publisher's documentation text and cover paths, checked.

    Args:
        documentation: A Markdown / text file appended to the generated documentation, or None.
        covers: Cover images shown after the generated one.

    Returns:
        ``{"documentation": text ("" without a file), "covers": [Path, ...]}``.

    Raises:
        UserError: a file is missing, not text, or a cover is not an image type the Model Zoo shows.
    """
    text = ""
    if documentation is not None:
        path = Path(documentation)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"--documentation '{path}' not found: pass a Markdown file") from None
        except (UnicodeDecodeError, IsADirectoryError):
            raise UserError(f"--documentation '{path}' is not a UTF-8 text file: pass a Markdown file") from None
        text = f"\n## From the authors\n{text.strip()}\n"
    checked = []
    for cover in covers or ():
        path = Path(cover)
        if not path.is_file():
            raise UserError(f"--cover '{path}' not found: pass a PNG or JPEG image")
        if path.suffix.lower() not in COVER_SUFFIXES:
            raise UserError(f"--cover '{path.name}': use one of {', '.join(COVER_SUFFIXES)} (at most 500 KB, 2:1 "
                            "or 1:1)")
        checked.append(path.resolve())
    return {"documentation": text, "covers": checked}


def standalone_warnings(weight_formats: Sequence[str]) -> list[str]:
    """A warning when no weight format of the package runs without micro-sam."""
    if any(wf in STANDALONE_FORMATS for wf in weight_formats):
        return []
    return ["only pytorch_state_dict weights: their architecture imports micro-sam (micro_sam.util, torch_em), so "
            "deepImageJ, ilastik and a plain bioimageio.core cannot run the package; export with "
            "--weight-format torchscript (or onnx) for a standalone package"]
