"""Shared fixtures: the bundled demo model, a random vit_t checkpoint built here, the stardist test data."""
from __future__ import annotations

import os
from pathlib import Path

# bioimageio.spec pings URLs during validation; there is no network here
os.environ.setdefault("BIOIMAGEIO_PERFORM_IO_CHECKS", "false")

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def stardist_image() -> np.ndarray:
    """Real fluorescence nuclei, 512x512 uint16 (stardist 0.9.2's img2d.tif, see tests/data/README.md)."""
    import tifffile

    return tifffile.imread(DATA / "img2d.tif")


@pytest.fixture(scope="session")
def stardist_mask() -> np.ndarray:
    """Ground-truth instance labels for :func:`stardist_image` (183 nuclei)."""
    import tifffile

    return tifffile.imread(DATA / "mask2d.tif")


@pytest.fixture(scope="session")
def small_image(stardist_image) -> np.ndarray:
    """A 256x256 crop with ~40 nuclei: small enough for many model runs on CPU."""
    return stardist_image[:256, :256].copy()


@pytest.fixture(scope="session")
def demo_model():
    """The demo model shipped in the package, loaded once for the whole session (CPU)."""
    from microsam_fiji import load_model

    return load_model("demo", device="cpu")


def build_random_checkpoint(path: Path) -> Path:
    """A micro-sam finetuning checkpoint ({"model_state", "decoder_state"}) of a random vit_t + UNETR decoder."""
    import torch
    from micro_sam.instance_segmentation import get_unetr
    from micro_sam.util import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry["vit_t"]()
    unetr = get_unetr(sam.image_encoder, None, device="cpu")
    decoder_state = {k: v for k, v in unetr.state_dict().items() if not k.startswith("encoder")}
    torch.save({"model_state": {f"sam.{k}": v for k, v in sam.state_dict().items()},
                "decoder_state": decoder_state}, path)
    return path


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory) -> Path:
    return build_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "random_vit_t.pt")
