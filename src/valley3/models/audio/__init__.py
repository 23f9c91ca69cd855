"""Audio encoders behind one contract (`AudioEncoder`)."""

from valley3.models.audio.base import AudioEncoder
from valley3.models.audio.whisper import WhisperEncoder

__all__ = ["AudioEncoder", "WhisperEncoder"]
