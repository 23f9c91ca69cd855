"""ImageDataModule: Image-text conversations (captions, attribute QA, multiple choice)."""

from __future__ import annotations

from valley3.data.datamodules.base import BaseDataModule


class ImageDataModule(BaseDataModule):
    """Image-text conversations (captions, attribute QA, multiple choice).

    A sample with another modality is a schema error naming its line.
    """

    modalities = frozenset({"text", "image"})
