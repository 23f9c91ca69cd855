"""Qwen2.5-VL's vision transformer at native resolution, with its own 2x2 patch merger."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, Qwen2_5_VLVisionConfig
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from valley3.models.presets import VISION, resolve
from valley3.models.vision.base import VisionEncoder
from valley3.models.weights import load_pretrained, local_folder, on_meta, tower_state
from valley3.models.init_args import records_init_args

_VISUAL_PREFIXES = ("model.visual.", "visual.")  # where a full Qwen2.5-VL checkpoint keeps the tower


@records_init_args
class QwenViTEncoder(VisionEncoder):
    """Qwen2.5-ViT: an image keeps its aspect ratio, rounded to multiples of patch x merge pixels (28 real).

    Each output token is one merged 2x2 block of patches, so an H x W input gives (H/28) x (W/28) tokens of
    the merger's width (`out_hidden_size`), row-major. Window attention and 2-D RoPE are transformers' own;
    this class only cuts the batch into the flattened-patch layout (Qwen2VLImageProcessor's) it expects, with
    each still image repeated over the temporal patch as Qwen does.

    Args:
        preset: a named shape from `valley3.models.presets.VISION` (e.g. "qwen2.5-vit").
        config: Qwen2_5_VLVisionConfig keywords, applied on top of the preset.
        path: a local folder with a Qwen2.5-VL checkpoint (its `visual` tower is read) or a saved tower alone.
        image_size: the square side used where one fixed size is asked for (e.g. tiles).
        min_tokens: fewest merged tokens per image; smaller images are scaled up (Qwen's 56x56 px).
        max_tokens: most merged tokens per image; larger images are scaled down (Qwen's default 1280).
    """

    image_mean = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, as Qwen2.5-VL's processor
    image_std = (0.26862954, 0.26130258, 0.27577711)

    def __init__(
        self,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        path: str | None = None,
        image_size: int = 448,
        min_tokens: int = 4,
        max_tokens: int = 1280,
    ):
        super().__init__()
        self.model = _load(path) if path is not None else Qwen2_5_VisionTransformerPretrainedModel(
            Qwen2_5_VLVisionConfig(**resolve(VISION, preset, config))
        )
        cfg = self.model.config
        self.embed_dim = cfg.out_hidden_size
        self.patch_size = cfg.patch_size
        self.merge = cfg.spatial_merge_size
        self.temporal = cfg.temporal_patch_size
        self.factor = self.patch_size * self.merge  # pixels per output token side
        self.min_pixels = min_tokens * self.factor**2
        self.max_pixels = max_tokens * self.factor**2
        if image_size % self.factor:
            raise ValueError(f"image_size {image_size} is not a multiple of patch x merge = {self.factor}")
        self.image_size = image_size

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)

    def grid(self, height: int, width: int) -> tuple[int, int]:
        h, w = self.input_size(height, width)
        return h // self.factor, w // self.factor

    def _patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # [B, C, H, W] -> [B * H/p * W/p, C * T * p * p], merge blocks contiguous (Qwen2VLImageProcessor.patchify).
        b, c, h, w = pixel_values.shape
        p, m = self.patch_size, self.merge
        x = pixel_values.reshape(b, c, h // (p * m), m, p, w // (p * m), m, p).permute(0, 2, 5, 3, 6, 1, 4, 7)
        x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, self.temporal, -1, -1)
        return x.reshape(b * (h // p) * (w // p), c * self.temporal * p * p)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.forward_many(list(pixel_values)))

    def forward_many(self, pictures: list[torch.Tensor]) -> list[torch.Tensor]:
        """Pictures [3, H, W] of different sizes in one pass of the tower (its attention stays within each picture,
        as Qwen2.5-VL batches them): [tokens, D] per picture. One call whatever the sizes, so FSDP ranks whose
        batches hold different numbers of sizes still all-gather the tower equally often."""
        for picture in pictures:
            if picture.shape[-2] % self.factor or picture.shape[-1] % self.factor:
                raise ValueError(f"QwenViTEncoder needs sides that are multiples of {self.factor}, "
                                 f"got {picture.shape[-2]}x{picture.shape[-1]}")
        sides = [(p.shape[-2] // self.patch_size, p.shape[-1] // self.patch_size) for p in pictures]
        grid_thw = torch.tensor([[1, h, w] for h, w in sides], device=pictures[0].device)
        patches = torch.cat([self._patchify(p.unsqueeze(0)) for p in pictures])
        merged = self.model(patches, grid_thw=grid_thw).pooler_output
        return list(merged.split([h * w // self.merge**2 for h, w in sides]))

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return {type(block) for block in self.model.blocks}


def _load(path: str) -> Qwen2_5_VisionTransformerPretrainedModel:
    """The vision tower from a local folder: a full Qwen2.5-VL checkpoint (only `visual.*` is read) or the tower."""
    cfg = AutoConfig.from_pretrained(local_folder(path), local_files_only=True)
    if cfg.model_type != "qwen2_5_vl":
        return load_pretrained(Qwen2_5_VisionTransformerPretrainedModel, path)
    model = Qwen2_5_VisionTransformerPretrainedModel(cfg.vision_config)
    if on_meta():  # shapes only (valley3 inspect): the tower's weights are not read
        return model
    state = tower_state(path, _VISUAL_PREFIXES)
    model.load_state_dict(state)  # strict: a missing tower weight is an error, not a random init
    return model
