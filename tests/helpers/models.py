"""Models built here for the tests (no weights can be downloaded): micro-sam's own builders, random weights."""
from __future__ import annotations

from pathlib import Path


def build_random_checkpoint(path: Path, model_type: str = "vit_t") -> Path:
    """A micro-sam finetuning checkpoint ({"model_state", "decoder_state"}) of a random SAM ``model_type`` + UNETR
    decoder, from micro-sam's own builders."""
    import torch
    from micro_sam.instance_segmentation import get_unetr
    from micro_sam.util import sam_model_registry

    torch.manual_seed(0)
    sam = sam_model_registry[model_type]()
    unetr = get_unetr(sam.image_encoder, None, device="cpu")
    decoder_state = {k: v for k, v in unetr.state_dict().items() if not k.startswith("encoder")}
    torch.save({"model_state": {f"sam.{k}": v for k, v in sam.state_dict().items()},
                "decoder_state": decoder_state}, path)
    return path
