"""Decoders: language models that OmniModel feeds with embeddings."""

from valley3.models.decoders.hf import HFDecoder

__all__ = ["HFDecoder"]
