"""Rewards: rule scorers and reward functions (rule and judge) for rejection sampling and GRPO."""

from valley3.rewards.agentic import AgentAnswerReward, AgentFormatReward
from valley3.rewards.base import Reward, RewardContext, WeightedRewards, question_of, reference_of
from valley3.rewards.judge import DEFAULT_RUBRIC, JudgeBackend, JudgeReward, parse_score
from valley3.rewards.judge_backends import HFJudge, HTTPJudge, PolicyJudge
from valley3.rewards.rule import (
    SCORERS,
    RuleScorer,
    choice_score,
    exact_score,
    json_f1,
    reference_kind,
    reference_letter,
)
from valley3.rewards.rule_rewards import AnswerReward, FormatReward, LengthPenalty, TokenShareReward, split_thinking

__all__ = [
    "AgentAnswerReward", "AgentFormatReward", "DEFAULT_RUBRIC", "SCORERS", "AnswerReward", "FormatReward", "HFJudge", "HTTPJudge", "JudgeBackend", "JudgeReward",
    "LengthPenalty", "PolicyJudge", "Reward", "RewardContext", "RuleScorer", "TokenShareReward", "WeightedRewards",
    "choice_score", "exact_score", "json_f1", "parse_score", "question_of", "reference_kind", "reference_letter",
    "reference_of", "split_thinking",
]
