"""The "fast" APG engine: micro-sam's automatic prompt generation with the same instances, computed faster.

Prompt derivation, mask decoding and non-maximum suppression follow micro-sam 1.8's
``AutomaticPromptGenerator`` / ``TiledAutomaticPromptGenerator`` step for step (same label order, same score
order, same thresholds, same painting), but NMS only compares masks whose boxes overlap, on crops, the SAM
mask decoder skips work whose result is shared by all prompts or never used (``decoder``), and masks are
upscaled and scored only in a window around each (``windows``)."""
from microsam_fiji.engines.fast.engine import generate

__all__ = ["generate"]
