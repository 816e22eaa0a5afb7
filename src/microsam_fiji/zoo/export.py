"""Export a micro-sam finetuning checkpoint as a BioImage Model Zoo package (spec 0.5) that runs APG.

The package's tensor path is one image in, one tensor of instance maps out (foreground, center distances,
boundary distances): the end-to-end UNETR of ``architecture.py``, runnable by bioimageio.core, ilastik and
deepImageJ. What APG needs beyond it (SAM's prompt encoder and mask decoder) is an attachment, and the APG / AIS
parameters live under ``config.micro_sam``, so ``microsam_fiji.load_model(package)`` rebuilds the full
micro-sam segmenter from the package alone (see ``load.py``)."""
from __future__ import annotations

import getpass
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from microsam_fiji.core.errors import UserError, one_line

PACKAGE_FORMAT = 1  # version of our config.micro_sam layout
WEIGHTS_FILE = "weights_pytorch_state_dict.pt"
TORCHSCRIPT_FILE = "weights_torchscript.pt"
ONNX_FILE = "weights.onnx"
SAM_ATTACHMENT = "sam_prompt_encoder_mask_decoder.pt"
ENCODER_PREFIX = "unetr.encoder."  # the SAM image encoder's keys in the package weights
DECODER_PREFIX = "unetr."  # the UNETR decoder's keys (micro-sam's decoder_state) in the package weights
INPUT_ID, OUTPUT_ID = "image", "instance_maps"
MAP_NAMES = ("foreground", "center_distances", "boundary_distances")
MIN_SIZE = 32
# micro_sam.util._to_image: (x - min) / (max - min + 1e-7) * 255, per channel
NORMALISATION_EPS = 1e-7
ONNX_OPSET = 18
DEFAULT_TEST_IMAGE = Path(__file__).resolve().parent.parent / "demo" / "nuclei-256.tif"
DEFAULT_TEST_IMAGE_LICENSE = DEFAULT_TEST_IMAGE.with_name("nuclei-256-LICENSE.txt")
TEST_IMAGE_LICENSE_FILE = "test_image_LICENSE.txt"  # attachment: the built-in test / cover image's licence
# the Model Zoo's rules for covers (bioimage.io upload guidelines)
COVER_MAX_BYTES = 500 * 1024
COVER_PANEL = 256  # pixels per side of each of the cover's two square panels (2:1)
DOC_SECTIONS = ("Description", "Intended use", "Validation", "Citation")
PERSON_FIELDS = ("affiliation", "email", "orcid", "github_user")
MICRO_SAM_FIJI_REPO = "https://github.com/computational-cell-analytics/micro-sam"
DEFAULT_TAGS = ("micro-sam", "segment-anything", "instance-segmentation", "automatic-prompt-generation",
                "microscopy", "2d", "pytorch")
MICRO_SAM_DOC = "https://computational-cell-analytics.github.io/micro-sam/micro_sam.html"
MICRO_SAM_DOI = "10.1038/s41592-024-02580-4"
WEIGHT_FORMATS = ("pytorch_state_dict", "torchscript", "onnx")

# Reproducing the test outputs (micro-sam's own decoder maps, in 0..1). pytorch_state_dict and torchscript
# reproduce them exactly on CPU (measured on the built-in image); ONNX Runtime's kernels differ in the last bits
# (1e-4) and its antialiased downscaling (images over 1024 px) moves some pixels by one uint8 step; other devices
# (GPU) and another floating-point order of the preprocessing in other consumers can do the same.
TOLERANCE = {"absolute_tolerance": 2e-3, "relative_tolerance": 0.0, "mismatched_elements_per_million": 2000}


@dataclass
class ExportReport:
    """What export measured, also written into the package's documentation."""

    path: Path
    weight_formats: list[str]
    max_abs_diff: dict[str, float]  # per weight format: package output vs micro-sam's decoder maps
    n_objects: int
    skipped: dict[str, str] = field(default_factory=dict)  # weight format -> why it is missing


def _read_source(checkpoint: Path, model_type: str | None):
    from microsam_fiji.models.checkpoint import infer_model_type
    from microsam_fiji.models.checkpoint import read_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"checkpoint '{checkpoint}' not found: pass a micro-sam finetuning checkpoint (.pt)")
    state, model_state = read_checkpoint(checkpoint)
    if "decoder_state" not in state:
        raise UserError(f"checkpoint '{checkpoint.name}' has no instance decoder ('decoder_state'): APG needs a "
                        "model trained with one (micro-sam finetuning with the UNETR decoder)")
    inferred = infer_model_type(model_state)
    if model_type is not None and model_type[:5] != inferred:
        raise UserError(f"--model-type {model_type} does not match the checkpoint, whose weights are {inferred}: "
                        f"use --model-type {inferred} or leave it out")
    return state, model_state, model_type or inferred


def _package_weights(model_state: Mapping, decoder_state: Mapping) -> dict:
    """The architecture's state dict: SAM image encoder + UNETR decoder, float32."""
    weights = {ENCODER_PREFIX + k[len("image_encoder."):]: v.float() for k, v in model_state.items()
               if k.startswith("image_encoder.")}
    weights.update({DECODER_PREFIX + k: v.float() for k, v in decoder_state.items()})
    return weights


def uses_conv_transpose(decoder_state: Mapping) -> bool:
    # micro_sam.instance_segmentation.get_unetr decides this way
    return any(".block." in k for k in decoder_state if k.startswith("decoder.samplers"))


def _test_plane(test_image) -> tuple[np.ndarray, str]:
    """(Y, X) or (Y, X, 3) pixels of the test image and where they came from."""
    from microsam_fiji.core.images import to_planes
    from microsam_fiji.core.tiff_io import read_image

    if test_image is None:
        test_image, origin = DEFAULT_TEST_IMAGE, "built-in crop of stardist's img2d.tif"
    if isinstance(test_image, (str, os.PathLike)):
        origin = Path(test_image).name if test_image != DEFAULT_TEST_IMAGE else origin
        loaded = read_image(test_image)
        planes = to_planes(loaded.data, loaded.axes or None)
    else:
        origin = "array passed to export_package"
        planes = to_planes(test_image)
    if len(planes.data) != 1:
        raise UserError(f"the test image has {len(planes.data)} planes: pass a single 2D (or RGB) image")
    plane = planes.data[0]
    if min(plane.shape[:2]) < MIN_SIZE:
        raise UserError(f"the test image is {plane.shape[0]}x{plane.shape[1]} pixels: use one of at least "
                        f"{MIN_SIZE}x{MIN_SIZE}")
    return plane, origin


def _as_tensor(plane: np.ndarray) -> np.ndarray:
    """(1, C, Y, X) float32: the package's input layout."""
    arr = plane.astype(np.float32)
    return arr[None, None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)[None]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_person(text: str, kind: str) -> dict[str, str]:
    """``"Jane Doe; affiliation=Uni X; github_user=jdoe; orcid=0000-0002-1825-0097; email=j@x.org"`` ->
    fields of a bioimageio Author / Maintainer (the name first, the rest as key=value)."""
    parts = [p.strip() for p in text.split(";") if p.strip()]
    fields: dict[str, str] = {}
    for i, part in enumerate(parts):
        key, sep, value = part.partition("=")
        if not sep and i == 0:
            fields["name"] = part
            continue
        key = key.strip().replace("-", "_")
        if key == "github":
            key = "github_user"
        if not sep or key not in ("name", *PERSON_FIELDS) or not value.strip():
            raise UserError(f"--{kind} {text!r}: use 'NAME; github_user=USER; affiliation=TEXT; orcid=ID; "
                            "email=ADDRESS' (fields after the name optional)")
        fields[key] = value.strip()
    return fields


def _people(texts: Sequence[str] | None, kind: str):
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import ValidationError

    cls = spec.Author if kind == "author" else spec.Maintainer
    people = []
    for text in texts or []:
        fields = parse_person(text, kind)
        try:
            people.append(cls(**fields))
        except ValidationError as err:
            problem = err.errors()[0]
            raise UserError(f"--{kind} {text!r}: {'.'.join(map(str, problem['loc']))}: {problem['msg']}") \
                from None
    return people


def _authors(authors: Sequence[str] | None):
    from bioimageio.spec.model import v0_5 as spec

    people = _people([a for a in (authors or []) if a and a.strip()], "author")
    return people or [spec.Author(name=getpass.getuser())]  # validate warns: a user name is no author


def _uploader(text: str | None):
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import ValidationError

    if not text:
        return None
    email, _, name = text.partition(";")
    try:
        return spec.Uploader(email=email.strip(), name=name.strip() or None)
    except ValidationError:
        raise UserError(f"--uploader {text!r}: use 'EMAIL' or 'EMAIL; NAME'") from None


def _upload_fields(maintainers, uploader, version, git_repo, training_data) -> dict:
    """Optional Model Zoo fields from the export options, checked by bioimageio.spec's own types."""
    from bioimageio.spec.dataset.v0_3 import LinkedDataset
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import TypeAdapter, ValidationError

    fields: dict[str, Any] = {}
    if maintainers:
        fields["maintainers"] = _people(maintainers, "maintainer")
    if uploader:
        fields["uploader"] = _uploader(uploader)
    for key, value, kind, hint in (("version", version, spec.Version, "e.g. 1.0.0"),
                                   ("git_repo", git_repo, spec.HttpUrl, "an https:// URL")):
        if value:
            try:
                fields[key] = TypeAdapter(kind).validate_python(str(value))
            except ValidationError:
                raise UserError(f"--{key.replace('_', '-')} {value!r} is not valid: {hint}") from None
    if training_data:
        dataset_id, _, dataset_version = str(training_data).partition("/")
        try:
            fields["training_data"] = LinkedDataset(id=dataset_id, version=dataset_version or None)
        except ValidationError:
            raise UserError(f"--training-data {training_data!r}: give a Model Zoo dataset id, e.g. "
                            "'amazing-dataset' or 'amazing-dataset/1'") from None
    return fields


def _environment_file(path: Path, model_type: str) -> Path:
    from importlib.metadata import version

    lines = ["name: micro-sam-apg", "channels:", "  - conda-forge", "dependencies:", "  - python>=3.10",
             f"  - micro_sam>={version('micro_sam')}", "  - pytorch", "  - torchvision"]
    if model_type.startswith("vit_t"):  # micro-sam's vit_t is MobileSAM's TinyViT
        lines += ["  - pip", "  - pip:", "    - mobilesam-mirror"]
    path.write_text("\n".join(lines) + "\n")
    return path


def micro_sam_config(model_type: str, mode: str, apg: Mapping, ais: Mapping) -> dict:
    from importlib.metadata import version

    return {
        "format": PACKAGE_FORMAT,
        "model_type": model_type,
        "micro_sam_version": version("micro_sam"),
        "default_mode": mode,
        "apg": dict(apg),
        "ais": dict(ais),
        "weights": WEIGHTS_FILE,
        "encoder_prefix": ENCODER_PREFIX,
        "decoder_prefix": DECODER_PREFIX,
        "sam_attachment": SAM_ATTACHMENT,
        "use_conv_transpose": None,  # filled by export
        "input": INPUT_ID,
        "output": OUTPUT_ID,
        "output_channels": list(MAP_NAMES),
    }


def input_text(channels: int) -> str:
    """The input tensor's description: what it declares (Model Zoo consumers follow the declaration)."""
    if channels == 1:
        return "2D grayscale image (1 channel), any pixel type, scaled per image to 0..255 (an RGB export declares RGB)"
    return "2D RGB image (3 channels), any pixel type, scaled per image and channel to 0..255 (a gray export declares gray)"


def _describe(*, name, description, plane_channels, files: dict[str, Path], weights, config, authors, license,
              tags, doc: Path, cover: Path, env: Path, architecture_kwargs, upload_fields=None):
    import torch
    from bioimageio.spec.model import v0_5 as spec

    channel_names = ["gray"] if plane_channels == 1 else ["red", "green", "blue"]
    size = spec.ParameterizedSize(min=MIN_SIZE, step=1)
    inputs = [spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID),
        description=input_text(plane_channels),
        axes=[spec.BatchAxis(size=1), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in channel_names]),
              spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
              spec.SpaceInputAxis(id=spec.AxisId("x"), size=size)],
        test_tensor=spec.FileDescr(source=files["test_input"]),
        sample_tensor=spec.FileDescr(source=files["sample_input"]),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[
            spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=[spec.AxisId("y"), spec.AxisId("x")], min_percentile=0.0, max_percentile=100.0,
                eps=NORMALISATION_EPS)),
            spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=255.0)),
        ],
    )]
    outputs = [spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID),
        description="micro-sam instance decoder: foreground probability, center and boundary distances",
        axes=[spec.BatchAxis(size=1), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in MAP_NAMES]),
              spec.SpaceOutputAxis(id=spec.AxisId("y"), size=spec.SizeReference(
                  tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId("y"))),
              spec.SpaceOutputAxis(id=spec.AxisId("x"), size=spec.SizeReference(
                  tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId("x")))],
        test_tensor=spec.FileDescr(source=files["test_output"]),
        sample_tensor=spec.FileDescr(source=files["sample_output"]),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )]
    return spec.ModelDescr(
        name=name,
        description=description,
        authors=authors,
        cite=[spec.CiteEntry(text="Archit et al. Segment Anything for Microscopy. Nature Methods (2025)",
                             doi=spec.Doi(MICRO_SAM_DOI)),
              spec.CiteEntry(text="micro-sam documentation: automatic prompt generation (APG) and instance "
                                  "segmentation with a decoder (AIS)", url=spec.HttpUrl(MICRO_SAM_DOC))],
        license=spec.LicenseId(license),
        tags=list(tags),
        documentation=spec.FileDescr(source=doc),
        covers=[spec.FileDescr(source=cover)],
        inputs=inputs,
        outputs=outputs,
        attachments=[spec.FileDescr(source=files[key], sha256=spec.Sha256(_sha256(files[key])))
                     for key in ("sam", "test_image_license") if key in files],
        **(upload_fields or {}),
        weights=weights if weights is not None else spec.WeightsDescr(
            pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
                source=files["weights"], sha256=spec.Sha256(_sha256(files["weights"])),
                architecture=spec.ArchitectureFromFileDescr(
                    source=files["architecture"], callable=spec.Identifier("InstanceMaps"),
                    kwargs=architecture_kwargs),
                pytorch_version=spec.Version(torch.__version__.split("+")[0]),
                dependencies=spec.FileDescr(source=env),
            )),
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                reproducibility_tolerance=[spec.ReproducibilityTolerance(**TOLERANCE)]),
            micro_sam=config,
        ),
    )


def _check_name(name: str) -> str:
    import string

    allowed = set(string.ascii_letters + string.digits + "_+- ()")
    if not name or not name.strip() or set(name) - allowed or not 5 <= len(name) <= 128:
        raise UserError(f"package name {name!r} is not allowed: use 5 to 128 letters, digits, spaces and _+-()")
    return name


def _check_license(license: str) -> str:
    from bioimageio.spec.model import v0_5 as spec
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(spec.LicenseId).validate_python(license)
    except ValidationError:
        raise UserError(f"unknown license '{license}': use an SPDX identifier such as CC-BY-4.0 or MIT") from None
    return license


def _micro_sam_maps(model, plane: np.ndarray) -> np.ndarray:
    """micro-sam's own decoder output for ``plane`` (what ``InstanceSegmentationWithDecoder.initialize`` sets)."""
    from microsam_fiji.engines.state import image_state

    state = image_state(model, plane)
    return np.stack([state.foreground, state.center_distances, state.boundary_distances]).astype(np.float32)


def predict_maps(descr, image: np.ndarray, weight_format: str) -> np.ndarray:
    """The package's tensor path on ``image`` (1, C, Y, X) through bioimageio.core, with its preprocessing."""
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import create_sample_for_model

    sample = create_sample_for_model(descr, inputs={INPUT_ID: image})
    with create_prediction_pipeline(descr, weight_format=weight_format, devices=["cpu"]) as pipeline:
        result = pipeline.predict_sample_without_blocking(sample)
    return np.asarray(result.members[OUTPUT_ID].data, dtype=np.float32)


def _mismatch(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs difference, mismatched elements per million) under TOLERANCE."""
    diff = np.abs(actual.astype(np.float64) - expected)
    bad = diff > TOLERANCE["absolute_tolerance"] + TOLERANCE["relative_tolerance"] * np.abs(expected)
    return float(diff.max()), float(bad.mean() * 1e6)


def _convert(descr, weight_format: str, folder: Path):
    """Weights in ``weight_format`` made from the pytorch_state_dict ones by bioimageio.core's converters."""
    if weight_format == "torchscript":
        return _trace_torchscript(descr, folder / TORCHSCRIPT_FILE)
    from bioimageio.core.weight_converters.pytorch_to_onnx import convert
    from bioimageio.spec.model import v0_5 as spec

    onnx = convert(descr, folder / ONNX_FILE, opset_version=ONNX_OPSET, devices=["cpu"])
    # record hashes as for the other files (the converter leaves them to the packager's IO checks)
    data = onnx.external_data
    return spec.OnnxWeightsDescr(
        source=onnx.source, sha256=spec.Sha256(_sha256(Path(str(onnx.source)))), parent=onnx.parent,
        opset_version=onnx.opset_version, comment=onnx.comment,
        external_data=None if data is None else spec.FileDescr(
            source=data.source, sha256=spec.Sha256(_sha256(Path(str(data.source))))))


def _trace_torchscript(descr, path: Path):
    """bioimageio.core's ``pytorch_to_torchscript.convert`` with ``use_tracing=True``, minus torch.jit.trace's
    re-run of the network to check the trace (two more forward passes at 1024 x 1024: minutes on a CPU); export
    compares the traced weights' output with micro-sam's afterwards instead."""
    import torch
    from bioimageio.core import __version__ as core_version
    from bioimageio.core.backends.pytorch_backend import load_torch_model
    from bioimageio.spec.model import v0_5 as spec

    model = load_torch_model(descr.weights.pytorch_state_dict, load_state=True, devices=["cpu"]).eval()
    example = [torch.from_numpy(a) for a in descr.get_input_test_arrays()]
    with torch.no_grad():
        traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return spec.TorchscriptWeightsDescr(source=path.absolute(), sha256=spec.Sha256(_sha256(path)),
                                        pytorch_version=spec.Version(torch.__version__.split("+")[0]),
                                        parent="pytorch_state_dict",
                                        comment=f"traced (bioimageio.core {core_version} converter's way)")


def _quiet_converter_logs():
    from loguru import logger

    logger.disable("bioimageio")


def export_package(checkpoint: str | os.PathLike, out: str | os.PathLike, *, name: str,
                   model_type: str | None = None, test_image=None, apg_params: Mapping[str, Any] | None = None,
                   ais_params: Mapping[str, Any] | None = None, mode: str = "apg",
                   authors: Sequence[str] | None = None, license: str = "CC-BY-4.0", tags: Sequence[str] = (),
                   description: str | None = None, weight_formats: Sequence[str] = WEIGHT_FORMATS,
                   progress=None, **upload) -> Path:
    """Write a Model Zoo package (zip) of a micro-sam finetuning ``checkpoint`` and return its path.

    ``apg_params`` / ``ais_params`` override micro-sam's defaults stored as the package's defaults
    (names as for :func:`microsam_fiji.run`); ``mode`` is the package's default mode. ``test_image``: a path
    or a 2D / RGB array (default: a built-in nuclei crop); the package's test tensors and cover come from it.
    Weight formats that cannot be made or do not reproduce micro-sam are left out and reported.

    For the Model Zoo upload (``upload``): ``maintainers`` (like ``authors``: ``"NAME; github_user=USER;
    affiliation=...``"), ``uploader`` (``"EMAIL; NAME"``), ``version``, ``git_repo``, ``training_data`` (a Model
    Zoo dataset id) and ``test_labels`` (ground truth for the test image: mSA and object counts in the
    documentation's Validation section)."""
    return export_package_report(checkpoint, out, name=name, model_type=model_type, test_image=test_image,
                                 apg_params=apg_params, ais_params=ais_params, mode=mode, authors=authors,
                                 license=license, tags=tags, description=description,
                                 weight_formats=weight_formats, progress=progress, **upload).path


def export_package_report(checkpoint, out, *, name, model_type=None, test_image=None, apg_params=None,
                          ais_params=None, mode="apg", authors=None, license="CC-BY-4.0", tags=(),
                          description=None, weight_formats=WEIGHT_FORMATS, progress=None, maintainers=None,
                          uploader=None, version=None, git_repo=None, training_data=None,
                          test_labels=None) -> ExportReport:
    """:func:`export_package`, returning what was measured as well."""
    import tifffile
    import torch
    from bioimageio.spec import save_bioimageio_package
    from bioimageio.spec.model import v0_5 as spec

    from microsam_fiji.models.checkpoint import load_checkpoint
    from microsam_fiji.core.params import check_mode, resolve_params
    from microsam_fiji.engines.segment import run
    from microsam_fiji.core.tiff_io import atomic_write
    from microsam_fiji.zoo import architecture

    say = progress or (lambda msg: None)
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UserError(f"output '{out}' must end in .zip (a Model Zoo package is a zip file)")
    unknown = set(weight_formats) - set(WEIGHT_FORMATS)
    if unknown or "pytorch_state_dict" not in weight_formats:
        raise UserError(f"weight formats {sorted(weight_formats)}: choose from {', '.join(WEIGHT_FORMATS)}, "
                        "pytorch_state_dict included")
    name, license, mode = _check_name(name), _check_license(license), check_mode(mode)
    apg, ais = resolve_params("apg", apg_params), resolve_params("ais", ais_params)
    state, model_state, model_type = _read_source(Path(checkpoint), model_type)
    plane, origin = _test_plane(test_image)
    built_in_image = test_image is None or (isinstance(test_image, (str, os.PathLike))
                                            and Path(test_image).resolve() == DEFAULT_TEST_IMAGE)
    truth = _test_labels(test_labels, plane.shape[:2])
    authors_descr = _authors(authors)
    upload_fields = _upload_fields(maintainers, uploader, version, git_repo, training_data)
    _quiet_converter_logs()

    say("running micro-sam on the test image")
    model = load_checkpoint(checkpoint, model_type, device="cpu")
    expected = _micro_sam_maps(model, plane)[None]
    labels = run(plane, model, mode, tile_threshold=None, **(apg if mode == "apg" else ais)).labels
    n_objects = int(len(np.unique(labels[labels > 0])))
    scores = _scores(labels, truth) if truth is not None else None
    conv_transpose = uses_conv_transpose(state["decoder_state"])
    config = micro_sam_config(model_type, mode, apg, ais)
    config["use_conv_transpose"] = conv_transpose

    with tempfile.TemporaryDirectory(prefix="microsam-export-") as tmp_name:
        tmp = Path(tmp_name)
        files = {"weights": tmp / WEIGHTS_FILE, "sam": tmp / SAM_ATTACHMENT, "test_input": tmp / "test_input.npy",
                 "test_output": tmp / "test_output.npy", "architecture": tmp / "microsam_apg_architecture.py",
                 "sample_input": tmp / "sample_input.tif", "sample_output": tmp / "sample_output.tif"}
        torch.save(_package_weights(model_state, state["decoder_state"]), files["weights"])
        torch.save({k: v.float() for k, v in model_state.items() if not k.startswith("image_encoder.")},
                   files["sam"])
        image = _as_tensor(plane)
        np.save(files["test_input"], image)
        np.save(files["test_output"], expected)
        tifffile.imwrite(files["sample_input"], plane)  # the same pixels, for people and imageio
        tifffile.imwrite(files["sample_output"], expected[0])
        shutil.copyfile(architecture.__file__, files["architecture"])
        if built_in_image:
            files["test_image_license"] = tmp / TEST_IMAGE_LICENSE_FILE
            shutil.copyfile(DEFAULT_TEST_IMAGE_LICENSE, files["test_image_license"])
        env = _environment_file(tmp / "environment.yaml", model_type)
        cover = tmp / "cover.png"
        write_cover(cover, plane, labels)
        doc = tmp / "documentation.md"
        common = dict(name=name, description=description or _default_description(model_type, mode),
                      plane_channels=image.shape[1], files=files, config=config, authors=authors_descr,
                      upload_fields=upload_fields,
                      license=license, tags=list(dict.fromkeys([*DEFAULT_TAGS, *tags])), doc=doc, cover=cover,
                      env=env, architecture_kwargs={"model_type": model_type[:5],
                                                    "use_conv_transpose": conv_transpose})
        doc.write_text("(written after validation)\n")
        descr = _describe(weights=None, **common)
        weights = {"pytorch_state_dict": descr.weights.pytorch_state_dict}
        skipped: dict[str, str] = {}
        for wf in weight_formats:
            if wf == "pytorch_state_dict":
                continue
            say(f"converting to {wf}")
            try:
                weights[wf] = _convert(descr, wf, tmp)
            except Exception as err:  # a converter failing leaves a valid package without that format
                skipped[wf] = f"conversion failed: {one_line(err, 200)}"
        descr = _describe(weights=spec.WeightsDescr(**weights), **common)

        diffs: dict[str, float] = {}
        for wf in list(weights):
            say(f"checking {wf} against micro-sam")
            try:
                actual = predict_maps(descr, image, wf)
            except Exception as err:
                skipped[wf] = f"prediction failed: {one_line(err, 200)}"
                del weights[wf]
                continue
            diffs[wf], ppm = _mismatch(actual, expected)
            if ppm > TOLERANCE["mismatched_elements_per_million"]:
                if wf == "pytorch_state_dict":
                    raise UserError(f"the packaged network does not reproduce micro-sam's decoder output "
                                    f"({ppm:.0f} ppm of values off by up to {diffs[wf]:.3g}): report this with the "
                                    "checkpoint and test image")
                skipped[wf] = f"output differs from micro-sam's ({ppm:.0f} ppm beyond tolerance)"
                del weights[wf]
        doc.write_text(documentation(name=name, model_type=model_type, mode=mode, apg=apg, ais=ais, origin=origin,
                                     shape=plane.shape, n_objects=n_objects, diffs=diffs, skipped=skipped,
                                     channels=image.shape[1], scores=scores, built_in_image=built_in_image,
                                     training_data=training_data))
        descr = _describe(weights=spec.WeightsDescr(**weights), **common)
        say("writing the package")
        atomic_write(out, lambda tmp_zip: save_bioimageio_package(descr, output_path=Path(tmp_zip)))
    return ExportReport(path=out, weight_formats=list(weights), max_abs_diff=diffs, n_objects=n_objects,
                        skipped=skipped)


def _default_description(model_type: str, mode: str) -> str:
    return (f"micro-sam {model_type} with instance decoder: foreground/distance maps for any tool; "
            f"full {mode.upper()} with micro-sam")[:128]


def write_cover(path: Path, plane: np.ndarray, labels: np.ndarray) -> Path:
    """The test image and, beside it, its objects outlined: two square panels (the image's central square,
    scaled to COVER_PANEL pixels), 2:1 and well under 500 KB, as the Model Zoo asks of covers."""
    from PIL import Image
    from skimage.segmentation import find_boundaries

    from microsam_fiji.core.micro_sam_compat import to_image

    rgb = to_image(plane)  # the uint8 view micro-sam segments
    outlined = rgb.copy()
    outlined[find_boundaries(labels, mode="inner")] = (255, 220, 0)
    h, w = rgb.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    panels = [Image.fromarray(a[y0:y0 + side, x0:x0 + side]).resize((COVER_PANEL, COVER_PANEL), Image.NEAREST)
              for a in (rgb, outlined)]
    cover = Image.new("RGB", (2 * COVER_PANEL, COVER_PANEL))
    for i, panel in enumerate(panels):
        cover.paste(panel, (i * COVER_PANEL, 0))
    cover.save(path, optimize=True)
    return path


def _test_labels(test_labels, shape) -> np.ndarray | None:
    """Ground-truth instance labels for the test image (a path or an array), or None."""
    if test_labels is None:
        return None
    if isinstance(test_labels, (str, os.PathLike)):
        from microsam_fiji.core.tiff_io import read_image

        truth = np.asarray(read_image(test_labels).data)
    else:
        truth = np.asarray(test_labels)
    truth = np.squeeze(truth)
    if truth.shape != tuple(shape) or not np.issubdtype(truth.dtype, np.integer):
        raise UserError(f"--test-labels: {truth.shape} {truth.dtype} labels for a {shape[0]}x{shape[1]} test "
                        "image: pass integer instance labels of the test image's size")
    return truth


def _scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """mSA (micro-sam's evaluation metric, from elf) and object counts of ``labels`` against ``truth``."""
    from elf.evaluation import mean_segmentation_accuracy

    msa, (sa50, _sa55, _sa60, _sa65, _sa70, sa75, *_rest) = mean_segmentation_accuracy(
        labels, truth, return_accuracies=True)
    return {"msa": float(msa), "sa50": float(sa50), "sa75": float(sa75),
            "n_predicted": int(len(np.unique(labels[labels > 0]))), "n_true": int(len(np.unique(truth[truth > 0])))}


def _param_table(params: Mapping[str, Any]) -> str:
    return "\n".join(f"| `{k}` | `{v}` |" for k, v in params.items())


def documentation(*, name, model_type, mode, apg, ais, origin, shape, n_objects, diffs, skipped, channels=1,
                  scores=None, built_in_image=False, training_data=None) -> str:
    """The package's documentation.md, with the sections the Model Zoo asks for (DOC_SECTIONS)."""
    from importlib.metadata import version

    checks = "\n".join(f"- `{wf}`: largest difference to micro-sam's maps {d:.2e}" for wf, d in diffs.items())
    missing = "\n".join(f"- `{wf}` not included: {why}" for wf, why in skipped.items()) or "- none"
    tol = TOLERANCE
    channel_text = ("grayscale, 1 channel as declared (the network takes RGB too: export with an RGB test image "
                    "to declare RGB)" if channels == 1 else
                    "RGB, 3 channels as declared (the network takes grayscale too: export with a gray test image "
                    "to declare gray)")
    if scores is not None:
        accuracy = (f"Against the ground-truth labels given for the test image ({scores['n_true']} objects), "
                    f"{mode.upper()} with this package's defaults found {scores['n_predicted']} objects: mean "
                    f"segmentation accuracy (mSA, micro-sam's metric over IoU thresholds 0.5..0.95) "
                    f"**{scores['msa']:.3f}**, SA50 {scores['sa50']:.3f}, SA75 {scores['sa75']:.3f}. One image is no "
                    "benchmark: measure on your own annotated images.")
    else:
        accuracy = (f"{mode.upper()} with this package's defaults found {n_objects} objects in the test image "
                    "(cover image, right). No ground truth was given at export (`--test-labels`), so no accuracy "
                    "is reported here: measure it on your own annotated images.")
    if built_in_image:
        test_image = (f"The test and cover image is a crop of StarDist's `img2d.tif` (BSD-3-Clause, (c) 2018-2025 "
                      f"Uwe Schmidt, Martin Weigert); its licence is attached as `{TEST_IMAGE_LICENSE_FILE}`.")
    else:
        test_image = f"The test and cover image ({origin}) was provided by the exporter."
    trained_on = (f"Training data: Model Zoo dataset `{training_data}`." if training_data else
                  "Training data: not stated by the exporter (ask the authors).")
    return f"""# {name}

## Description
A [micro-sam](https://github.com/computational-cell-analytics/micro-sam) (Segment Anything for Microscopy)
`{model_type}` model with its instance-segmentation decoder, packaged by micro-sam-fiji for automatic prompt
generation (APG). Default mode: **{mode.upper()}**. {trained_on}

## Intended use
Instance segmentation of 2D microscopy images like the ones it was trained on (cells, nuclei, ...): micro-sam's
APG or AIS in micro-sam, micro-sam-fiji (Fiji macros) or napari; the tensor path (foreground and distance maps)
in any Model Zoo consumer. Not for 3D volumes as such (segment slice by slice), and not a diagnostic tool.

## How to run
- **Any Model Zoo consumer** (bioimageio.core, ilastik, deepImageJ): input `{INPUT_ID}` (batch 1, {channel_text},
  any size of at least {MIN_SIZE}x{MIN_SIZE}) -> output `{OUTPUT_ID}` of the same size with 3
  channels: `foreground` probability, `center_distances`, `boundary_distances` (0..1). Threshold the foreground
  for a semantic mask; the distances separate touching objects (seeded watershed).
- **Full APG / AIS** needs micro-sam: the SAM prompt encoder and mask decoder are attached
  (`{SAM_ATTACHMENT}`), the parameters are in `config.micro_sam`.
  With micro-sam-fiji: `microsam-fiji segment IMAGE --model this.zip --out DIR`, or in Python
  `microsam_fiji.segment(image, model="this.zip")`.
  With micro-sam alone: the SAM checkpoint is the image encoder (keys `{ENCODER_PREFIX}*` of
  `{WEIGHTS_FILE}`, prefix replaced by `image_encoder.`) plus the attachment's keys; the decoder state is the
  remaining keys of `{WEIGHTS_FILE}` without the prefix `{DECODER_PREFIX}`. Save
  `{{"model_state": sam_state, "decoder_state": decoder_state}}` with `torch.save` and pass it to
  `micro_sam.instance_segmentation.get_predictor_and_decoder(model_type="{model_type[:5]}", checkpoint_path=...)`.

The network resizes the image to 1024 pixels on its longest side internally (as SAM does), so any tile size
gives the same compute; segment whole images rather than small tiles.

## Preprocessing
Per image and channel: `(x - min) / (max - min + 1e-7) * 255` (`scale_range` 0..100 percentiles, then
`scale_linear` gain 255), exactly micro-sam's `_to_image`. The network then truncates to integers, repeats
a grayscale channel to RGB and resizes like micro-sam's SAM predictor (PIL bilinear on uint8).

The network also keeps two behaviours of micro-sam {version("micro_sam")} at inference, so that its output is
micro-sam's: the decoder's BatchNorm layers normalise with each image's own statistics (micro-sam leaves the
decoder in training mode), and a vit_t (MobileSAM) encoder uses the attention biases of a freshly built model
(micro-sam caches them before it loads the weights).

## APG parameters (defaults of this package)
| parameter | value |
|---|---|
{_param_table(apg)}

## AIS parameters
| parameter | value |
|---|---|
{_param_table(ais)}

## Validation
Exported with micro-sam {version("micro_sam")} and micro-sam-fiji on a {shape[0]}x{shape[1]} test image
({origin}). The test output tensor is micro-sam's own decoder output
(`InstanceSegmentationWithDecoder.initialize`) for the test input, not this package's, so reproducing it checks
that the package computes what micro-sam computes. Each weight format was run through bioimageio.core:
{checks}

Declared tolerance (`config.bioimageio.reproducibility_tolerance`): absolute {tol['absolute_tolerance']},
relative {tol['relative_tolerance']}, at most {tol['mismatched_elements_per_million']} mismatched values per
million. Weight formats left out:
{missing}

{accuracy}
Run `microsam-fiji validate this.zip` to repeat bioimageio.core's full test (`test_model`, every weight format,
several input sizes) and the Model Zoo upload checks.

## Limitations
The model is only as good as its training data; check the results on your images. APG is micro-sam's
algorithm: see its documentation ({MICRO_SAM_DOC}). {test_image}

## Citation
Archit, A., Freckmann, L., Nair, S. et al. Segment Anything for Microscopy. Nature Methods 22, 579-591 (2025).
https://doi.org/{MICRO_SAM_DOI}. Please also cite the authors of this model (see its `authors` and `cite`).
"""
