"""What a Model Zoo consumer gets who tiles one of our packages: bioimageio.core's prediction of a package's test
input whole and blockwise (``blocksize_parameter``: blocks of min + n*step px, here 32 + n), the largest map
difference to the whole-image prediction and the objects micro-sam's AIS recipe finds in each.

    python bench/zoo_tiling_bench.py my-nuclei.zip [--n 96 10 0] [--weight-format torchscript]

The whole-image prediction is compared with the package's test output (micro-sam's own maps) too. Each block runs
the full network (the encoder at 1024 px): on a CPU a block costs about as much as the whole image."""
from __future__ import annotations

import argparse
import os
import time
import zipfile
from pathlib import Path


def objects(maps, ais) -> int:
    """Objects of micro-sam's AIS (InstanceSegmentationWithDecoder.generate's steps) in maps (1, 3, H, W)."""
    import bioimage_cpp as bic
    import numpy as np
    from torch_em.util.segmentation import watershed_from_center_and_boundary_distances

    maps = np.nan_to_num(np.asarray(maps, dtype=np.float32))[0]
    foreground = bic.filters.gaussian_smoothing(maps[0], ais["foreground_smoothing"])
    labels = watershed_from_center_and_boundary_distances(
        maps[1], maps[2], foreground, ais["center_distance_threshold"], ais["boundary_distance_threshold"],
        ais["foreground_threshold"], ais["distance_smoothing"], ais["min_size"])
    return len(np.unique(labels[labels > 0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--n", type=int, nargs="+", default=[96, 10], help="blocksize parameters to try")
    parser.add_argument("--weight-format", default="torchscript")
    args = parser.parse_args()
    os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")
    import io

    import numpy as np
    from bioimageio.core import create_prediction_pipeline, predict
    from bioimageio.core.digest_spec import create_sample_for_model
    from bioimageio.spec import load_model_description
    from bioimageio.spec.model.v0_5 import ModelDescr, ParameterizedSize, SpaceInputAxis

    descr = load_model_description(args.package, perform_io_checks=False)
    assert isinstance(descr, ModelDescr), "a spec 0.5 model package"
    test_input, test_output = descr.inputs[0].test_tensor, descr.outputs[0].test_tensor
    assert test_input is not None and test_output is not None, "a package with test tensors"
    with zipfile.ZipFile(args.package) as z:
        image = np.load(io.BytesIO(z.read(str(test_input.source)))).astype("float32")
        reference = np.load(io.BytesIO(z.read(str(test_output.source))))
    ais = (descr.config.model_extra or {})["micro_sam"]["ais"]
    y_axis = descr.inputs[0].axes[2]
    assert isinstance(y_axis, SpaceInputAxis) and isinstance(y_axis.size, ParameterizedSize), y_axis
    size = y_axis.size  # blocks are min + n*step
    pipeline = create_prediction_pipeline(descr, weight_format=args.weight_format, devices=["cpu"])
    input_id, output_id = str(descr.inputs[0].id), str(descr.outputs[0].id)

    def run(n):
        sample = create_sample_for_model(descr, inputs={input_id: image})
        started = time.perf_counter()
        out = predict(model=pipeline, inputs=sample, blocksize_parameter=n)
        return np.asarray(out.members[output_id].data), time.perf_counter() - started

    whole, seconds = run(None)
    print(f"{args.package.name}, {image.shape[-2]}x{image.shape[-1]} test input, {args.weight_format}: whole image "
          f"{seconds:.0f} s, {objects(whole, ais)} objects (micro-sam's maps: {objects(reference, ais)}), largest "
          f"difference to micro-sam's maps {np.abs(whole - reference).max():.3g}")
    for n in args.n:
        block = size.min + n * size.step
        try:
            tiled, seconds = run(n)
        except ValueError as err:  # a block larger than the image: bioimageio.core refuses
            print(f"blocksize_parameter={n} ({block} px blocks): refused: {err}")
            continue
        print(f"blocksize_parameter={n} ({block} px blocks): {seconds:.0f} s, {objects(tiled, ais)} objects, largest "
              f"difference to the whole image {np.nanmax(np.abs(tiled - whole)):.3g}, mean "
              f"{np.nanmean(np.abs(tiled - whole)):.3g}")


if __name__ == "__main__":
    main()
