"""Image and text embeddings in one L2-normalised space from a SigLIP/CLIP-style dual encoder (transformers)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel, AutoTokenizer, SiglipConfig, SiglipImageProcessor, SiglipModel

from valley3.assets import tiny_tokenizer_dir
from valley3.data.media.image import load_image

TINY = "tiny-siglip"
# A SigLIP small enough to embed 10,000 catalog images in seconds on a CPU; random weights, so it tests the
# index's plumbing, not retrieval quality. The text side reads the project's tiny tokenizer.
_TINY_TEXT = dict(vocab_size=1024, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=32, bos_token_id=None, eos_token_id=None)
_TINY_VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=4)


def save_tiny_encoder(out: str | os.PathLike, seed: int = 0) -> str:
    """Write a randomly initialised tiny SigLIP (weights, tokenizer, image processor) to `out`; returns `out`.

    Args:
        out: folder to write; `CatalogEncoder(out)` loads it like any local checkpoint.
        seed: the initialisation seed (the same seed writes the same weights).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SiglipModel(SiglipConfig(text_config=_TINY_TEXT, vision_config=_TINY_VISION))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir()).save_pretrained(out)
    size = _TINY_VISION["image_size"]
    SiglipImageProcessor(size={"height": size, "width": size}).save_pretrained(out)
    return str(out)


class CatalogEncoder:
    """Embeds images and texts with a local SigLIP- or CLIP-style checkpoint; rows are L2-normalised float32.

    Args:
        path: a local folder with the model (`AutoModel`: SiglipModel, CLIPModel, ...), its tokenizer and its
            image processor. Nothing is downloaded.
        batch_size: items per forward pass.
        device: where the model runs.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = 64, device: str = "cpu"):
        if not Path(path).is_dir():
            raise FileNotFoundError(f"encoder folder {path} does not exist (build a tiny one with save_tiny_encoder)")
        self.path = str(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.image_processor = AutoImageProcessor.from_pretrained(path)
        self.batch_size = batch_size
        self.device = device
        # SigLIP pools the last position, so texts are padded to the length it was trained with.
        self.text_len = self.model.config.text_config.max_position_embeddings

    @property
    def dim(self) -> int:
        """Embedding width: CLIP's `projection_dim`, SigLIP's text `projection_size` (its hidden size by default)."""
        cfg = self.model.config
        return int(getattr(cfg, "projection_dim", None) or getattr(cfg.text_config, "projection_size", None)
                   or cfg.text_config.hidden_size)

    @torch.inference_mode()
    def embed_images(self, images: Sequence[str | os.PathLike | Image.Image]) -> np.ndarray:
        """[N, D] embeddings of image files (or PIL images); a missing or broken file raises MediaError naming it."""
        rows = []
        for start in range(0, len(images), self.batch_size):
            batch = [im if isinstance(im, Image.Image) else load_image(im) for im in images[start:start + self.batch_size]]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"].to(self.device)
            rows.append(_features(self.model.get_image_features(pixel_values=pixels)))
        return _normalised(rows, self.dim)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D] embeddings of texts (truncated to the model's text length)."""
        rows = []
        for start in range(0, len(texts), self.batch_size):
            ids = self.tokenizer(list(texts[start:start + self.batch_size]), padding="max_length", truncation=True,
                                 max_length=self.text_len, return_tensors="pt")["input_ids"].to(self.device)
            rows.append(_features(self.model.get_text_features(input_ids=ids)))
        return _normalised(rows, self.dim)


def _features(out) -> torch.Tensor:
    """transformers >= 5 returns the projected embedding as `pooler_output`; older versions a tensor."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _normalised(rows: list[torch.Tensor], dim: int) -> np.ndarray:
    if not rows:
        return np.zeros((0, dim), dtype=np.float32)
    x = torch.cat(rows).float()
    return torch.nn.functional.normalize(x, dim=-1).cpu().numpy().astype(np.float32)
