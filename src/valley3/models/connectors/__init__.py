"""Connectors (projectors) from an encoder's width to the decoder's, behind one contract (`Connector`)."""

from valley3.models.connectors.audio_mlp import AudioMLPConnector
from valley3.models.connectors.base import Connector
from valley3.models.connectors.conv_adapter import ConvAdapter
from valley3.models.connectors.mlp import MLPConnector
from valley3.models.connectors.pixel_shuffle import PixelShuffleConnector
from valley3.models.connectors.visual_vocab import VisualVocabConnector

__all__ = [
    "AudioMLPConnector", "Connector", "ConvAdapter", "MLPConnector", "PixelShuffleConnector", "VisualVocabConnector",
]
