"""Vision encoders behind one contract (`VisionEncoder`)."""

from valley3.models.vision.base import VisionEncoder, grid_parts
from valley3.models.vision.eagle import EagleEncoder
from valley3.models.vision.qwen_vit import QwenViTEncoder
from valley3.models.vision.siglip import SigLIPEncoder
from valley3.models.vision.siglip2 import SigLIP2Encoder
from valley3.models.vision.timm_vit import TimmViTEncoder

__all__ = [
    "EagleEncoder", "QwenViTEncoder", "SigLIP2Encoder", "SigLIPEncoder", "TimmViTEncoder", "VisionEncoder",
    "grid_parts",
]
