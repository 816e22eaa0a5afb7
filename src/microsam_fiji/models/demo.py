"""The demo model that ships inside the package (a pipeline demo, not a useful segmenter)."""
from __future__ import annotations

from pathlib import Path

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "demo" / "demo-nuclei-vit_t.pt"



DEMO_NAME = "demo"
