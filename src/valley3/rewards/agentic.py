"""Rewards of tool-use trajectories: the final answer (rule or judge), the format rule, and a search-count penalty."""

from __future__ import annotations

import re
from collections.abc import Callable

from valley3.agent.rollout import Trajectory
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
    """`scorer(answer, reference)` of the final answer (0.0 without one); the default is the rule-based exact match,
    a judge (`valley3.rewards`) plugs in as any callable."""
    answer = trajectory.answer
    return 0.0 if answer is None else float(scorer(answer, reference))


def agentic_reward(trajectory: Trajectory, reference: str, answer_weight: float = 1.0, format_weight: float = 0.5,
                   search_penalty: float = 0.0,
                   scorer: Callable[[str | None, str], float] = exact_score) -> dict[str, float]:
    """The reward of a trajectory and its parts.

    total = answer_weight * answer * max(0, 1 - search_penalty * tool_calls) + format_weight * format.
    As in MMSearch-R1, the penalty only discounts right answers: a wrong answer is not made worse by the searches
    it needed, so the policy learns to search less only where it can still answer.
    """
    answer = answer_score(trajectory, reference, scorer)
    fmt = format_score(trajectory)
    discount = max(0.0, 1.0 - search_penalty * trajectory.tool_calls)
    total = answer_weight * answer * discount + format_weight * fmt
    return {"total": total, "answer": answer, "format": fmt, "tool_calls": float(trajectory.tool_calls),
            "turns": float(trajectory.turns), "failed_calls": float(trajectory.failed_calls)}
