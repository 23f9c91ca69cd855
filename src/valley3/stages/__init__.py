"""Training stages: thin LightningModules over OmniStage (S0-S3, P1 reasoning SFT and P2 GRPO of the Valley3 recipe,
evaluation)."""

from valley3.stages.agentic_grpo import AgenticGRPOStage
from valley3.stages.agentic_sft import AgenticSFTStage
from valley3.stages.base import OmniStage
from valley3.stages.evaluate import EvalStage
from valley3.stages.grpo import GRPOStage
from valley3.stages.reasoning_eval import ReasoningEvalStage
from valley3.stages.reasoning_sft import ReasoningSFTStage
from valley3.stages.s0_audio_align import AudioAlignStage
from valley3.stages.s1_audio_instruct import AudioInstructStage
from valley3.stages.s2_domain_cpt import DomainCPTStage
from valley3.stages.s3_rejection_ft import RejectionFTStage

__all__ = [
    "AgenticGRPOStage", "AgenticSFTStage", "AudioAlignStage", "AudioInstructStage", "DomainCPTStage", "EvalStage", "GRPOStage",
    "OmniStage", "ReasoningEvalStage", "ReasoningSFTStage", "RejectionFTStage",
]
