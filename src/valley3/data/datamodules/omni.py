"""OmniDataModule: Any mix of text, image, audio and video conversations."""

from __future__ import annotations

from valley3.data.datamodules.base import BaseDataModule


class OmniDataModule(BaseDataModule):
    """Any mix of text, image, audio and video conversations.

    A sample with another modality is a schema error naming its line.
    """

    modalities = frozenset({"text", "image", "audio", "video"})
