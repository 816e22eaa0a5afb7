"""BioImage Model Zoo packages of micro-sam models with APG metadata: export, validate, load."""
from .export import export_package
from .load import load_package
from .validate import validate_package

__all__ = ["export_package", "load_package", "validate_package"]
