"""The package's documentation.md: how to run it, its parameters, how it was validated, with the sections the
Model Zoo asks for (``DOC_SECTIONS``)."""
from __future__ import annotations

from typing import Any, Mapping

from microsam_fiji.models.package import PYDANTIC_PIN
from microsam_fiji.models.package_config import (
    DECODER_PREFIX,
    ENCODER_PREFIX,
    INPUT_ID,
    OUTPUT_ID,
    SAM_ATTACHMENT,
    WEIGHTS_FILE,
)
from microsam_fiji.zoo.card import (
    APG_PAPER_TEXT,
    APG_PAPER_URL,
    MICRO_SAM_DOC,
    MICRO_SAM_DOI,
    MOBILE_SAM_URL,
    SAM_DOI,
)
from microsam_fiji.zoo.postprocessing import MACRO_FILE
from microsam_fiji.zoo.reproduction import TOLERANCE
from microsam_fiji.zoo.tensors import MIN_SIZE
from microsam_fiji.zoo.test_data import TEST_IMAGE_LICENSE_FILE, TEST_IMAGE_URL

DOC_SECTIONS = ("Description", "Intended use", "Validation", "Citation")


def _training_data_text(training_data: str | None) -> str:
    """The training data as a reader wants it: a link (DOI, URL) or the Model Zoo dataset's page."""
    from microsam_fiji.zoo.metadata import training_data_source

    if not training_data:
        return "Training data: not stated by the exporter (ask the authors)."
    url = training_data_source(training_data)
    if url is not None:
        return f"Training data: {url}."
    dataset_id = str(training_data).partition("/")[0]
    return f"Training data: the Model Zoo dataset `{training_data}` (https://bioimage.io/#/?id={dataset_id})."


def _param_table(params: Mapping[str, Any]) -> str:
    return "\n".join(f"| `{k}` | `{v}` |" for k, v in params.items())


# what the snippet runs on: the package's test output, micro-sam's maps of its test input (test_data.py's name)
SNIPPET_MAPS = "test_output.npy"


def python_snippet(ais: Mapping[str, Any]) -> str:
    """Python (numpy, scipy, scikit-image; no micro-sam) that turns the package's maps into instances with
    micro-sam's AIS recipe (torch_em's ``watershed_from_center_and_boundary_distances``: the same Gaussian, 8-connected
    seeds, watershed and size filter) and the package's AIS parameters as defaults.

    Args:
        ais: The package's AIS parameters (``config.micro_sam.ais``).

    Returns:
        The code, which ends by running on ``SNIPPET_MAPS`` in the unpacked package.
    """
    return f'''import numpy as np
from scipy import ndimage
from skimage.measure import label
from skimage.segmentation import relabel_sequential, watershed


def instances(maps, foreground_threshold={float(ais["foreground_threshold"])}, center_distance_threshold={float(ais["center_distance_threshold"])},
              boundary_distance_threshold={float(ais["boundary_distance_threshold"])}, foreground_smoothing={float(ais["foreground_smoothing"])},
              distance_smoothing={float(ais["distance_smoothing"])}, min_size={int(ais["min_size"])}):
    """Instance labels (0 = background) from this package's maps of one image: (3, H, W) foreground,
    center distances, boundary distances (micro-sam's AIS: seeds, then a watershed on the boundary distances)."""
    def smooth(plane, sigma):  # torch_em's (vigra's) Gaussian: radius 3 sigma, mirrored border
        return ndimage.gaussian_filter(plane.astype(np.float64), sigma, mode="mirror", truncate=3.0) if sigma > 0 else plane
    foreground = smooth(maps[0], foreground_smoothing) > foreground_threshold
    center, boundary = smooth(maps[1], distance_smoothing), smooth(maps[2], distance_smoothing)
    seeds = label((center < center_distance_threshold) & (boundary < boundary_distance_threshold) & foreground)
    labels = watershed(boundary, markers=seeds, mask=foreground)
    if min_size > 0:
        ids, sizes = np.unique(labels, return_counts=True)
        labels[np.isin(labels, ids[sizes < min_size])] = 0
        labels = relabel_sequential(labels)[0]
    return labels


# maps: the package's output `{OUTPUT_ID}` for one whole image, e.g. from bioimageio.core (no blocksize_parameter):
#   from bioimageio.core import predict
#   maps = predict(model="this.zip", inputs={{"{INPUT_ID}": image[None, None]}}).members["{OUTPUT_ID}"].data
# here: the package's test output, its maps of test_input.npy
maps = np.load("{SNIPPET_MAPS}")
labels = instances(np.asarray(maps)[0])
print(labels.max(), "objects")
'''


def documentation(*, name, model_type, mode, apg, ais, origin, shape, n_objects, diffs, skipped, channels=1,
                  scores=None, built_in_image=False, training_data=None) -> str:
    """The package's documentation.md, with the sections the Model Zoo asks for (DOC_SECTIONS).

    Args:
        name: The package name (the title).
        model_type: The SAM encoder type.
        mode: The package's default mode.
        apg: The APG parameters stored in the package.
        ais: The AIS parameters stored in the package.
        origin: Where the test image came from, in words.
        shape: The test image's shape.
        n_objects: Objects the default mode found in the test image.
        diffs: Weight format -> largest difference to micro-sam's maps.
        skipped: Weight format -> why it was left out.
        channels: The input's channels as declared (1 or 3).
        scores: Accuracy against ground truth (see :func:`microsam_fiji.zoo.evaluation.scores`), or None.
        built_in_image: Whether the test image is the built-in crop (its licence is then cited).
        training_data: The Model Zoo dataset id of the training data, or None.

    Returns:
        The Markdown text.
    """
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
        test_image = (f"The test and cover image is a crop of StarDist's `img2d.tif` ({TEST_IMAGE_URL}; BSD-3-Clause, "
                      f"(c) 2018-2025 Uwe Schmidt, Martin Weigert); its licence is attached as "
                      f"`{TEST_IMAGE_LICENSE_FILE}`.")
    else:
        test_image = f"The test and cover image ({origin}) was provided by the exporter."
    mobile_sam = (f"Zhang, C. et al. MobileSAM (vit_t), arXiv:2306.14289 (2023), {MOBILE_SAM_URL}.\n"
                  if model_type.startswith("vit_t") else "")
    trained_on = _training_data_text(training_data)
    return f"""# {name}

## Description
A [micro-sam](https://github.com/computational-cell-analytics/micro-sam) (Segment Anything for Microscopy)
`{model_type}` model with its instance-segmentation decoder, packaged by micro-sam-fiji for automatic prompt
generation (APG). Default mode: **{mode.upper()}**. {trained_on}

**Whole images only.** The maps depend on all of the image (per-image scaling, resizing to 1024 px, per-image
statistics), so tiles or blocks give wrong maps and objects without any error: bioimageio.core's
`blocksize_parameter` or `input_block_shape`, a tiled deepImageJ or ilastik run. The Model Zoo's format cannot
forbid tiling; the input's axes are declared not `concatenable`, its description says so.

## Intended use
Instance segmentation of 2D microscopy images like the ones it was trained on (cells, nuclei, ...): micro-sam's
APG or AIS in micro-sam, micro-sam-fiji (Fiji macros) or napari; the tensor path (foreground and distance maps)
in any Model Zoo consumer. Not for 3D volumes as such (segment slice by slice), and not a diagnostic tool.

## How to run
- **Any Model Zoo consumer** (bioimageio.core, ilastik, deepImageJ): input `{INPUT_ID}` (batch 1, {channel_text},
  any size of at least {MIN_SIZE}x{MIN_SIZE}) -> output `{OUTPUT_ID}` of the same size with 3
  channels: `foreground` probability, `center_distances`, `boundary_distances` (0..1). Threshold the foreground
  for a semantic mask; the distances separate touching objects (seeded watershed).
- **bioimageio.core** (Python): `pip install "bioimageio.core>=0.11,<0.12" "{PYDANTIC_PIN}"` (with pydantic 2.14,
  bioimageio.spec 0.5.12 rejects every model, this one included); predict whole images, no `blocksize_parameter`.
- **Weight formats**: `torchscript` and `onnx` are standalone (PyTorch or ONNX Runtime alone: deepImageJ,
  ilastik, bioimageio.core); `pytorch_state_dict` needs micro-sam installed (its architecture imports
  `micro_sam.util` and `torch_em`).
- **Instances in ImageJ / deepImageJ**: the attached macro `{MACRO_FILE}` (also `config.deepimagej`
  postprocessing) turns the three maps into a label image with micro-sam's AIS recipe and this package's AIS
  thresholds: seeds where foreground > threshold and both smoothed distances < threshold, then a seeded
  watershed on the boundary distances inside the foreground (ImageJ 1.x alone, no plugins; runs headless too:
  `java -jar ij.jar -batch {MACRO_FILE} "maps.tif labels.tif"`).
- **Instances in Python without micro-sam** (numpy, scipy, scikit-image): the same recipe with this package's AIS
  parameters; run in the unpacked package, it segments the test output:

```python
{python_snippet(ais)}```
- **Full APG / AIS** needs micro-sam: the SAM prompt encoder and mask decoder are attached
  (`{SAM_ATTACHMENT}`), the parameters are in `config.micro_sam`.
  With micro-sam-fiji: `microsam-fiji segment IMAGE --model this.zip --out DIR`, or in Python
  `microsam_fiji.segment(image, model="this.zip")`.
  With micro-sam alone: the SAM checkpoint is the image encoder (keys `{ENCODER_PREFIX}*` of
  `{WEIGHTS_FILE}`, prefix replaced by `image_encoder.`) plus the attachment's keys; the decoder state is the
  remaining keys of `{WEIGHTS_FILE}` without the prefix `{DECODER_PREFIX}`. Save
  `{{"model_state": sam_state, "decoder_state": decoder_state}}` with `torch.save` and pass it to
  `micro_sam.instance_segmentation.get_predictor_and_decoder(model_type="{model_type[:5]}", checkpoint_path=...)`.

The network resizes the image to 1024 pixels on its longest side internally (as SAM does), so a tile costs as
much as the whole image and gives other maps: segment whole images.

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
https://doi.org/{MICRO_SAM_DOI}. Kirillov, A. et al. Segment Anything. ICCV (2023), https://doi.org/{SAM_DOI}.
{mobile_sam}For APG: {APG_PAPER_TEXT}, {APG_PAPER_URL}. Please also cite the authors of this model (see
its `authors` and `cite`).
"""
