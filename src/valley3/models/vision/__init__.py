"""Vision encoders behind one contract (`VisionEncoder`)."""

from valley3.models.vision.base import VisionEncoder
from valley3.models.vision.siglip import SigLIPEncoder

__all__ = ["SigLIPEncoder", "VisionEncoder"]
