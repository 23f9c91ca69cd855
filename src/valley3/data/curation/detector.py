"""Regions of interest from a torchvision detection model built by name, with weights from a local file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torchvision.models import detection


def load_detector(name: str, weights: str | None = None, min_score: float = 0.5):
    """A callable (PIL image) -> boxes [[x0, y0, x1, y1], ...] scoring at least `min_score`.

    Args:
        name: a torchvision detection builder, e.g. "fasterrcnn_mobilenet_v3_large_320_fpn".
        weights: a local state dict (.safetensors, or a .pt/.pth read with weights_only=True); None keeps
            the random initialisation (tests). Nothing is downloaded.
        min_score: detections below this score are ignored.
    """
    builder = getattr(detection, name, None)
    if builder is None or not callable(builder):
        raise ValueError(f"unknown torchvision detection model {name!r}")
    model = builder(weights=None, weights_backbone=None)
    if weights is not None:
        model.load_state_dict(_read_state(weights))
    model.eval()

    @torch.no_grad()
    def detect(image) -> list[list[float]]:
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
        found = model([pixels])[0]
        keep = found["scores"] >= min_score
        return found["boxes"][keep].tolist()

    return detect


def _read_state(path: str) -> dict[str, torch.Tensor]:
    if Path(path).suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)
