"""TextDataModule: Text-only conversations."""

from __future__ import annotations

from valley3.data.datamodules.base import BaseDataModule


class TextDataModule(BaseDataModule):
    """Text-only conversations.

    A sample with another modality is a schema error naming its line.
    """

    modalities = frozenset({"text"})
