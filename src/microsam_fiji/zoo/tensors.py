"""The package's input and output tensors as bioimageio declares them: one image in (scaled to 0..255 by the
package's preprocessing), one tensor of instance maps out, of the same size."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from microsam_fiji.models.package_config import INPUT_ID, MAP_NAMES, OUTPUT_ID
from microsam_fiji.zoo.weights import hashed_file

MIN_SIZE = 32  # smallest image side the package declares (and export accepts as test image)
# micro_sam.util._to_image: (x - min) / (max - min + 1e-7) * 255, per channel
NORMALISATION_EPS = 1e-7
# The maps depend on the whole image (per-image scaling, resize to 1024, per-image BatchNorm statistics), and
# bioimageio.spec 0.5 cannot say "whole image only". What it allows, done here: the spatial axes are declared not
# concatenable (the spec's word for "not to be processed blockwise"; bioimageio.core 0.11 ignores it), and the
# description opens with the rule. Left as they are, measured: ``min``/``step`` (MIN_SIZE, 1 is the only pair every
# image of MIN_SIZE px or more fits without padding, which would change the maps too; bioimageio.core's blocks are
# min + n*step), and no halo (bioimageio.core pads every whole image by the halo too: 15 px gave maps up to 0.82
# off micro-sam's on the test image, where without one they are equal). What a consumer who tiles gets
# (bench/zoo_tiling_bench.py, the demo package's 256x256 test image, torchscript): whole, micro-sam's maps exactly
# and 21 objects; 128 px blocks, maps up to 0.998 off and 17 objects; 42 px blocks (bioimageio.core's default
# n=10), 0 objects.
WHOLE_IMAGE = "Whole image only, no tiles or blocks: "  # the spec allows 128 characters in all


def input_text(channels: int) -> str:
    """The input tensor's description: what it declares (Model Zoo consumers follow the declaration)."""
    if channels == 1:
        return WHOLE_IMAGE + "2D grayscale image (1 channel), any pixel type, scaled per image to 0..255"
    return WHOLE_IMAGE + "2D RGB image (3 channels), any pixel type, scaled per image and channel to 0..255"


def input_tensor(channels: int, files: Mapping[str, Path]):
    """The input's ``InputTensorDescr``.

    Args:
        channels: 1 (gray) or 3 (RGB), as the test image has them.
        files: The package's files by role; ``test_input`` and ``sample_input`` are used.

    Returns:
        The description, with micro-sam's ``_to_image`` scaling as preprocessing.
    """
    from bioimageio.spec.model import v0_5 as spec

    channel_names = ["gray"] if channels == 1 else ["red", "green", "blue"]
    size = spec.ParameterizedSize(min=MIN_SIZE, step=1)
    return spec.InputTensorDescr(
        id=spec.TensorId(INPUT_ID),
        description=input_text(channels),
        axes=[spec.BatchAxis(size=1), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in channel_names]),
              spec.SpaceInputAxis(id=spec.AxisId("y"), size=size, concatenable=False),
              spec.SpaceInputAxis(id=spec.AxisId("x"), size=size, concatenable=False)],
        test_tensor=hashed_file(files["test_input"]),
        sample_tensor=hashed_file(files["sample_input"]),
        data=spec.IntervalOrRatioDataDescr(type="float32"),
        preprocessing=[
            spec.ScaleRangeDescr(kwargs=spec.ScaleRangeKwargs(
                axes=[spec.AxisId("y"), spec.AxisId("x")], min_percentile=0.0, max_percentile=100.0,
                eps=NORMALISATION_EPS)),
            spec.ScaleLinearDescr(kwargs=spec.ScaleLinearKwargs(gain=255.0)),
        ],
    )


def output_tensor(files: Mapping[str, Path]):
    """The output's ``OutputTensorDescr``: the three maps (``MAP_NAMES``) in 0..1, the input's size.

    Args:
        files: The package's files by role; ``test_output`` and ``sample_output`` are used.

    Returns:
        The description.
    """
    from bioimageio.spec.model import v0_5 as spec

    return spec.OutputTensorDescr(
        id=spec.TensorId(OUTPUT_ID),
        description="micro-sam instance decoder: foreground probability, center and boundary distances",
        axes=[spec.BatchAxis(size=1), spec.ChannelAxis(channel_names=[spec.Identifier(c) for c in MAP_NAMES]),
              spec.SpaceOutputAxis(id=spec.AxisId("y"), size=spec.SizeReference(
                  tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId("y"))),
              spec.SpaceOutputAxis(id=spec.AxisId("x"), size=spec.SizeReference(
                  tensor_id=spec.TensorId(INPUT_ID), axis_id=spec.AxisId("x")))],
        test_tensor=hashed_file(files["test_output"]),
        sample_tensor=hashed_file(files["sample_output"]),
        data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
    )
