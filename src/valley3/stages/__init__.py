"""Training stages: thin LightningModules over OmniStage."""

from valley3.stages.base import OmniStage
from valley3.stages.evaluate import EvalStage

__all__ = ["EvalStage", "OmniStage"]
