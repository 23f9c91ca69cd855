"""AudioDataModule: Audio-text conversations (ASR, audio QA): the data of stages S0 and S1."""

from __future__ import annotations

from valley3.data.datamodules.base import BaseDataModule


class AudioDataModule(BaseDataModule):
    """Audio-text conversations (ASR, audio QA): the data of stages S0 and S1.

    A sample with another modality is a schema error naming its line.
    """

    modalities = frozenset({"text", "audio"})
