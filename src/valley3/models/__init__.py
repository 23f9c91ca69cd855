"""Plain torch modules (no Lightning): encoders, connectors, decoders and the OmniModel that joins them."""

from valley3.models.omni import OmniModel, PlaceholderMismatch

__all__ = ["OmniModel", "PlaceholderMismatch"]
