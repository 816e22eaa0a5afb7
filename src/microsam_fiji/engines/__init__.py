"""Segmentation engines over a model's per-image state: ``run`` / ``segment`` (:mod:`.segment`), the engine
registry (:mod:`.registry`), micro-sam's own generators (:mod:`.micro_sam`) and the fast engine (:mod:`.fast`)."""
