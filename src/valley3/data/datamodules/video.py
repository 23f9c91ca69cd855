"""VideoDataModule: Video-text conversations (video QA, captions), with audio-in-video when the model hears."""

from __future__ import annotations

from valley3.data.datamodules.base import BaseDataModule


class VideoDataModule(BaseDataModule):
    """Video-text conversations (video QA, captions); frame sampling is the stage's `video` setting.

    A video's audio track becomes an audio input when the model has an audio encoder (audio-in-video), so the
    samples themselves carry only videos. A sample with another modality is a schema error naming its line;
    an unreadable video skips its sample, counted in `train/skipped`.
    """

    modalities = frozenset({"text", "video"})
