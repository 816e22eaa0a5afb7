"""BioImage Model Zoo packages of micro-sam models with APG metadata: export, validate, load."""
