"""Connectors (projectors) from an encoder's width to the decoder's."""

from valley3.models.connectors.audio_mlp import AudioMLPConnector
from valley3.models.connectors.mlp import MLPConnector

__all__ = ["AudioMLPConnector", "MLPConnector"]
