"""micro-sam automatic prompt generation (APG) for Fiji/ImageJ users and BioImage Model Zoo packages."""
from microsam_fiji.batch import segment_many
from microsam_fiji.core.errors import UserError
from microsam_fiji.engines.measurements import ObjectTable, measure_labels, measure_objects
from microsam_fiji.engines.prompted import PromptSegmentation, segment_from_prompts
from microsam_fiji.engines.segment import Segmentation, run, segment, segment_with_scores  # run: the old name
from microsam_fiji.models.load import load_model
from microsam_fiji.models.model import Model
from microsam_fiji.training import finetune

__all__ = ["Model", "ObjectTable", "PromptSegmentation", "Segmentation", "UserError", "finetune", "load_model",
           "measure_labels", "measure_objects", "run", "segment", "segment_from_prompts", "segment_many",
           "segment_with_scores"]
