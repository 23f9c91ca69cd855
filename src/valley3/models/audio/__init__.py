"""Audio encoders behind one contract (`AudioEncoder`)."""

from valley3.models.audio.aut import AuTEncoder
from valley3.models.audio.base import AudioEncoder
from valley3.models.audio.whisper import WhisperEncoder

__all__ = ["AuTEncoder", "AudioEncoder", "WhisperEncoder"]
