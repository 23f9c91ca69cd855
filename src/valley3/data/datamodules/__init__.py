"""LightningDataModules per modality mix; each is bound to a processor through `connect(...)`."""

from valley3.data.datamodules.audio import AudioDataModule
from valley3.data.datamodules.base import BaseDataModule, SampleDataset
from valley3.data.datamodules.image import ImageDataModule
from valley3.data.datamodules.omni import OmniDataModule
from valley3.data.datamodules.prompts import PromptDataModule
from valley3.data.datamodules.streaming import StreamingDataModule
from valley3.data.datamodules.text import TextDataModule
from valley3.data.datamodules.video import VideoDataModule

__all__ = ["AudioDataModule", "BaseDataModule", "ImageDataModule", "OmniDataModule", "PromptDataModule", "SampleDataset",
           "StreamingDataModule", "TextDataModule", "VideoDataModule"]
