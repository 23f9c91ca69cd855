"""Training stages: thin LightningModules over OmniStage."""

from valley3.stages.base import OmniStage

__all__ = ["OmniStage"]
