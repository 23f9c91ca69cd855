"""Decoders: language models that OmniModel feeds with embeddings."""

from valley3.models.decoders.base import Decoder
from valley3.models.decoders.hf import HFDecoder
from valley3.models.decoders.qwen3_vl import Qwen3VLDecoder

__all__ = ["Decoder", "HFDecoder", "Qwen3VLDecoder"]
