"""The policy API post-training builds on: generate with log-probs, and per-token log-probs of given answers."""

from valley3.policy.logprobs import TokenLogProbs
from valley3.policy.policy import Completion, Policy
from valley3.policy.prompts import build_processor

__all__ = ["Completion", "Policy", "TokenLogProbs", "build_processor"]
