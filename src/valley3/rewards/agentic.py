"""Rewards of tool-use trajectories: the final answer (rule or judge) with a search-count discount, and the format."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from valley3.agent.trajectory import Trajectory
from valley3.rewards.base import Prompt, Reward, RewardContext, reference_of
from valley3.rewards.rule import exact_score

_THINK = re.compile(r"<thinking>.*?</thinking>", re.S)


def format_score(trajectory: Trajectory) -> float:
    """1.0 when the trajectory is well formed, else 0.0. Well formed: it ended with an answer (no turn, call or
    token limit hit, no output cut for a reserved token), every call parsed and ran (no error message of any
    kind), every assistant turn has at most one thinking block, closed, before anything else, and the answer
    is not empty."""
    if trajectory.finish != "answer" or trajectory.errors:
        return 0.0
    for turn in trajectory.sample.turns[len(trajectory.prompt.turns):]:
        if turn.role != "assistant":
            continue
        text = turn.content
        if text.count("<thinking>") > 1 or text.count("<thinking>") != text.count("</thinking>"):
            return 0.0
        if "<thinking>" in text and not text.lstrip().startswith("<thinking>"):
            return 0.0
    return float(bool(trajectory.answer))


def answer_score(trajectory: Trajectory, reference: str,
                 scorer: Callable[[str | None, str], float] = exact_score) -> float:
    """`scorer(answer, reference)` of the final answer (0.0 without one)."""
    answer = trajectory.answer
    return 0.0 if answer is None else float(scorer(answer, reference))


def search_discount(trajectory: Trajectory, penalty: float) -> float:
    """max(0, 1 - penalty x tool calls): the share of a right answer's reward kept after its searches."""
    return max(0.0, 1.0 - penalty * trajectory.tool_calls)


def _trajectory(context: RewardContext | None, name: str) -> Trajectory:
    t = context.completion if context is not None else None
    if not isinstance(t, Trajectory):
        raise TypeError(f"reward {name!r} scores agent trajectories (AgenticGRPOStage); got {type(t).__name__}")
    return t


class AgentAnswerReward(Reward):
    """The trajectory's final answer against the prompt record's reference (its last assistant turn, thinking
    removed), times `search_discount`: as in MMSearch-R1, searching only discounts right answers, so the policy
    learns to search less where it can still answer and is never pushed to skip a search it needs.

    Args:
        search_penalty: reward share a right answer loses per tool call (0 = no penalty).
        judge: a reward that scores (prompt, answer text) instead of exact match, e.g. `JudgeReward`.
        name: the logged name.
    """

    def __init__(self, search_penalty: float = 0.0, judge: Reward | None = None, name: str = "answer"):
        super().__init__()
        self.search_penalty, self.judge, self.name = search_penalty, judge, name

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        t = _trajectory(context, self.name)
        reference = _THINK.sub("", reference_of(prompt) or "").strip()
        if t.answer is None:
            self.counts["no_answer"] += 1
            return 0.0
        if self.judge is not None:
            right = self.judge(prompt, t.answer, context)
        else:
            right = answer_score(t, reference)
        return right * search_discount(t, self.search_penalty)

    def stats(self) -> dict[str, float]:
        return {**dict(self.counts), **({f"judge/{k}": v for k, v in self.judge.stats().items()} if self.judge else {})}


class AgentFormatReward(Reward):
    """`format_score` of the trajectory: 1.0 for an answer reached with every call well formed and run, else 0.0.

    Args:
        name: the logged name.
    """

    def __init__(self, name: str = "format"):
        super().__init__()
        self.name = name

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        t = _trajectory(context, self.name)
        for kind in t.errors:
            self.counts[kind] += 1
        return format_score(t)


def agentic_reward(trajectory: Trajectory, reference: str, answer_weight: float = 1.0, format_weight: float = 0.5,
                   search_penalty: float = 0.0) -> dict[str, Any]:
    """The reward of one trajectory and its parts, outside a trainer (evaluation, tests):
    total = answer_weight x answer x search_discount + format_weight x format."""
    answer, fmt = answer_score(trajectory, reference), format_score(trajectory)
    total = answer_weight * answer * search_discount(trajectory, search_penalty) + format_weight * fmt
    return {"total": total, "answer": answer, "format": fmt, "tool_calls": trajectory.tool_calls,
            "turns": trajectory.turns, "failed_calls": trajectory.failed_calls}
