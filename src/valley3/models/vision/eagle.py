"""Eagle (Valley2): two vision towers on the same image, the second's tokens after the first's."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from valley3.models.vision.base import Grid, VisionEncoder
from valley3.models.init_args import records_init_args


@records_init_args
class EagleEncoder(VisionEncoder):
    """Runs `primary` and `secondary` on each image and concatenates their tokens along the sequence.

    The widths usually differ, so each tower gets its own block of channels (zeros in the other's):
    features are [B, N1 + N2, D1 + D2], and the connector's first layer acts as a separate projection per
    tower. The grid is the pair of the towers' grids; connectors map each part on its own (a 2x2 merge never
    straddles the towers), so `num_tokens` is the sum of the parts and always equals what comes out.

    The processor sizes and normalises images for `primary`; the secondary sees the same pixels resized to
    its own `input_size` and renormalised with its own mean and std.

    Args:
        primary: the main tower (it sets image_size, image_mean and image_std).
        secondary: the added tower, e.g. a native-resolution QwenViTEncoder.
    """

    def __init__(self, primary: VisionEncoder, secondary: VisionEncoder):
        super().__init__()
        self.primary = primary
        self.secondary = secondary
        self.embed_dim = primary.embed_dim + secondary.embed_dim
        self.image_size = primary.image_size
        self.image_mean = primary.image_mean
        self.image_std = primary.image_std

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return self.primary.input_size(height, width)

    def grid(self, height: int, width: int) -> Grid:
        return self.primary.grid(height, width), self.secondary.grid(*self.secondary.input_size(height, width))

    def _secondary_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.secondary.input_size(*pixel_values.shape[-2:])
        first, second = self.primary, self.secondary
        same_norm = (first.image_mean, first.image_std) == (second.image_mean, second.image_std)
        if same_norm and size == tuple(pixel_values.shape[-2:]):
            return pixel_values

        def stats(values):
            return torch.tensor(values, dtype=pixel_values.dtype, device=pixel_values.device).view(1, -1, 1, 1)

        pixels = pixel_values * stats(self.primary.image_std) + stats(self.primary.image_mean)
        if size != tuple(pixel_values.shape[-2:]):
            pixels = F.interpolate(pixels, size=size, mode="bicubic", align_corners=False, antialias=True)
        return (pixels - stats(self.secondary.image_mean)) / stats(self.secondary.image_std)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        first = self.primary(pixel_values)
        second = self.secondary(self._secondary_pixels(pixel_values))
        d1, d2 = first.shape[-1], second.shape[-1]
        return torch.cat([F.pad(first, (0, d2)), F.pad(second.to(first.dtype), (d1, 0))], dim=1)

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        return self.primary.block_classes | self.secondary.block_classes
