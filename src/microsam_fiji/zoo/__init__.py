"""BioImage Model Zoo packages of micro-sam models with APG metadata: export, validate, load."""
from microsam_fiji.models.package import load_package
from microsam_fiji.zoo.export import export_package
from microsam_fiji.zoo.validate import validate_package

__all__ = ["export_package", "load_package", "validate_package"]
