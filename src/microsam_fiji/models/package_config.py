"""``config.micro_sam`` of a Model Zoo package made by ``microsam-fiji export``: what micro-sam needs beyond the
tensor path (model type, APG / AIS defaults) and where the package keeps its parts.

One dataclass for both sides: :mod:`microsam_fiji.zoo.export` writes it (:meth:`MicroSamConfig.to_dict`) and
:mod:`microsam_fiji.models.package` reads it back (:meth:`MicroSamConfig.from_dict`). It lives in ``models``,
the layer below ``zoo``, so that the loader needs nothing of the exporter."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from microsam_fiji.core.errors import UserError

PACKAGE_FORMAT = 1  # version of the config.micro_sam layout below
WEIGHTS_FILE = "weights_pytorch_state_dict.pt"
SAM_ATTACHMENT = "sam_prompt_encoder_mask_decoder.pt"
ENCODER_PREFIX = "unetr.encoder."  # the SAM image encoder's keys in the package weights
DECODER_PREFIX = "unetr."  # the UNETR decoder's keys (micro-sam's decoder_state) in the package weights
INPUT_ID, OUTPUT_ID = "image", "instance_maps"
MAP_NAMES = ("foreground", "center_distances", "boundary_distances")


# kw_only: the fields can keep rdf.yaml's key order (to_dict writes them in declaration order) although the
# required model_type comes after the defaulted format
@dataclass(kw_only=True)
class MicroSamConfig:
    """A package's ``config.micro_sam``; the fields are its keys, in the order ``rdf.yaml`` lists them."""

    format: int = PACKAGE_FORMAT
    """Version of this layout (:data:`PACKAGE_FORMAT`)."""
    model_type: str
    """micro-sam's SAM encoder type (``vit_t``, ``vit_b``, ``vit_l``, ``vit_h``, possibly with a suffix such as
    ``vit_b_lm``), passed to micro-sam when the checkpoint is rebuilt."""
    micro_sam_version: str | None = None
    """micro-sam version the package was exported with (the test output is that version's decoder output)."""
    default_mode: str = "apg"
    """Mode a segmentation with this package runs unless told otherwise: ``apg`` or ``ais``."""
    apg: dict[str, Any] = field(default_factory=dict)
    """APG parameters, every one (micro-sam's defaults with the exporter's overrides), canonical names."""
    ais: dict[str, Any] = field(default_factory=dict)
    """AIS parameters, as :attr:`apg`."""
    weights: str = WEIGHTS_FILE
    """File of the ``pytorch_state_dict`` weights: SAM image encoder + UNETR decoder."""
    encoder_prefix: str = ENCODER_PREFIX
    """Prefix of the SAM image encoder's keys in :attr:`weights` (micro-sam's ``image_encoder.``)."""
    decoder_prefix: str = DECODER_PREFIX
    """Prefix of the UNETR decoder's keys in :attr:`weights` (the keys of micro-sam's ``decoder_state``);
    the encoder's keys start with it too, so a key is the decoder's when it has this prefix and not
    :attr:`encoder_prefix`."""
    sam_attachment: str = SAM_ATTACHMENT
    """Attachment holding the rest of the SAM state (prompt encoder and mask decoder), which APG needs."""
    use_conv_transpose: bool | None = None
    """Whether the UNETR decoder upsamples with transposed convolutions (an architecture argument; None until
    export has read the checkpoint)."""
    input: str = INPUT_ID
    """Id of the package's input tensor."""
    output: str = OUTPUT_ID
    """Id of the package's output tensor."""
    output_channels: tuple[str, ...] = MAP_NAMES
    """Names of the output tensor's channels, in order."""

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """``{"apg": ..., "ais": ...}``, copies, as :attr:`microsam_fiji.models.model.Model.params` holds them."""
        return {"apg": dict(self.apg), "ais": dict(self.ais)}

    def to_dict(self) -> dict[str, Any]:
        """The ``config.micro_sam`` mapping written into rdf.yaml: every field, in declaration order, as plain
        YAML types.

        Returns:
            A new dict; changing it leaves this config as it is.
        """
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["apg"], out["ais"] = dict(self.apg), dict(self.ais)
        out["output_channels"] = list(self.output_channels)
        return out

    @classmethod
    def from_dict(cls, config: Any, name: str = "package") -> MicroSamConfig:
        """Read a package's ``config.micro_sam``, resolving its APG / AIS parameters against micro-sam's defaults.

        Args:
            config: The ``config.micro_sam`` value of the rdf.yaml, whatever it is (None when absent).
            name: The package's name, for the error messages.

        Returns:
            The config; keys it lacks take this layout's defaults, keys it does not know are ignored (a newer
            exporter may add some).

        Raises:
            UserError: ``config`` is no mapping with a ``model_type`` (not a microsam-fiji export), or its
                parameters or default mode are not micro-sam's.
        """
        from microsam_fiji.core.params import check_mode, resolve_params

        if not isinstance(config, Mapping) or "model_type" not in config:
            raise UserError(f"'{name}' is a Model Zoo model without micro-sam APG metadata (config.micro_sam): use a "
                            "package made by 'microsam-fiji export', or run this model with bioimageio.core")
        try:
            params = {mode: resolve_params(mode, config.get(mode) or {}) for mode in ("apg", "ais")}
            mode = check_mode(config.get("default_mode", "apg"))
        except UserError as err:
            raise UserError(f"'{name}' has unusable micro-sam parameters: {err}") from None
        known = {f.name for f in fields(cls)} - {"apg", "ais", "default_mode", "output_channels"}
        kept: dict[str, Any] = {key: config[key] for key in known if key in config}
        if "output_channels" in config:
            kept["output_channels"] = tuple(config["output_channels"])
        return cls(**kept, default_mode=mode, apg=params["apg"], ais=params["ais"])
