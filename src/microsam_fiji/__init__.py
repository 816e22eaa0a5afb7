"""micro-sam automatic prompt generation (APG) for Fiji/ImageJ users and BioImage Model Zoo packages."""
from .batch import segment_many
from .errors import UserError
from .models import Model, load_model
from .segment import Segmentation, run, segment

__all__ = ["Model", "Segmentation", "UserError", "load_model", "run", "segment", "segment_many"]
