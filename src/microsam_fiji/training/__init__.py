"""Fine-tuning micro-sam on a user's own annotations: :func:`finetune` (micro-sam's trainer, our data, progress,
time budget, resume, provenance for ``export``)."""
from microsam_fiji.training.finetune import FinetuneResult, finetune
from microsam_fiji.training.monitor import Step

__all__ = ["FinetuneResult", "Step", "finetune"]
