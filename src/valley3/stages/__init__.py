"""Training stages: thin LightningModules over OmniStage (S0-S3 of the Valley3 recipe, evaluation)."""

from valley3.stages.agentic_sft import AgenticSFTStage
from valley3.stages.base import OmniStage
from valley3.stages.evaluate import EvalStage
from valley3.stages.s0_audio_align import AudioAlignStage
from valley3.stages.s1_audio_instruct import AudioInstructStage
from valley3.stages.s2_domain_cpt import DomainCPTStage
from valley3.stages.s3_rejection_ft import RejectionFTStage

__all__ = [
    "AgenticSFTStage", "AudioAlignStage", "AudioInstructStage", "DomainCPTStage", "EvalStage", "OmniStage",
    "RejectionFTStage",
]
