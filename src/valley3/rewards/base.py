"""The reward contract: a named callable (prompt record, completion, context) -> float, and weighted sums of them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from valley3.data.schema import Sample

# A prompt record: a Sample, or a messages-format dict ({"messages": [...], "images": [...], ...}).
Prompt = Sample | Mapping[str, Any]


@dataclass(frozen=True)
class RewardContext:
    """What a reward may know about a completion besides its text.

    Args:
        num_tokens: generated tokens (stop strings included, the end-of-turn token not).
        finish_reason: "eos", "stop" or "length" (cut at the budget).
        max_new_tokens: the generation budget.
        step: the training step (0 outside training).
        prompt_index: the prompt's index in its rollout batch.
        sample_index: the completion's index within its prompt's group.
        token_ids: the generated ids (as `num_tokens` counts them).
        completion: the sampled object itself: a policy `Completion`, or an agent `Trajectory` (agentic GRPO), for
            rewards that score more than the text (tool calls, turns, the final answer).
    """

    num_tokens: int = 0
    finish_reason: str = "eos"
    max_new_tokens: int | None = None
    step: int = 0
    prompt_index: int = 0
    sample_index: int = 0
    token_ids: tuple[int, ...] = ()
    completion: Any = None


def turns_of(prompt: Prompt) -> list[tuple[str, str]]:
    """(role, text) of every turn of a prompt record."""
    if isinstance(prompt, Sample):
        return [(t.role, t.content) for t in prompt.turns]
    return [(m["role"], m["content"] if isinstance(m["content"], str) else _text_of(m["content"]))
            for m in prompt["messages"]]


def _text_of(parts: Sequence[Mapping[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts if p.get("type") == "text")


def reference_of(prompt: Prompt) -> str | None:
    """The reference answer: the record's final assistant turn (the prompt is everything before it), else None."""
    turns = turns_of(prompt)
    return turns[-1][1] if turns and turns[-1][0] == "assistant" else None


def question_of(prompt: Prompt) -> str:
    """The last user turn's text (the question a completion answers)."""
    return next((text for role, text in reversed(turns_of(prompt)) if role == "user"), "")


class Reward(ABC):
    """A reward function: scores one completion of one prompt. Subclasses set `name` and implement `score`.

    `batch` scores many at once (a judge overrides it to send requests together); `stats` returns counters a
    trainer logs (a judge's failures), and `reset_stats` clears them.
    """

    name: str = "reward"

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    @abstractmethod
    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        """The completion's reward."""

    def __call__(self, prompt: Prompt, completion: str, context: RewardContext | None = None) -> float:
        return float(self.score(prompt, completion, context or RewardContext()))

    def batch(self, prompts: Sequence[Prompt], completions: Sequence[str],
              contexts: Sequence[RewardContext]) -> list[float]:
        """One reward per (prompt, completion, context)."""
        return [self(p, c, x) for p, c, x in zip(prompts, completions, contexts, strict=True)]

    def stats(self) -> dict[str, float]:
        return dict(self.counts)

    def reset_stats(self) -> None:
        self.counts.clear()


class WeightedRewards:
    """A weighted sum of reward functions; keeps each function's rewards so a trainer can log them apart.

    Args:
        rewards: the reward functions (their names must differ).
        weights: one weight per function (default 1 each).
    """

    def __init__(self, rewards: Sequence[Reward], weights: Sequence[float] | None = None):
        if not rewards:
            raise ValueError("give at least one reward function")
        names = [r.name for r in rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"reward names must differ (they name the logged curves), got {names}")
        weights = [1.0] * len(rewards) if weights is None else [float(w) for w in weights]
        if len(weights) != len(rewards):
            raise ValueError(f"{len(weights)} reward weights for {len(rewards)} reward functions")
        self.rewards, self.weights = list(rewards), weights

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rewards]

    def score(self, prompts: Sequence[Prompt], completions: Sequence[str],
              contexts: Sequence[RewardContext]) -> tuple[list[float], dict[str, list[float]]]:
        """The weighted total per completion, and each function's own rewards by name."""
        each = {r.name: r.batch(prompts, completions, contexts) for r in self.rewards}
        totals = [sum(w * each[r.name][i] for r, w in zip(self.rewards, self.weights))
                  for i in range(len(completions))]
        return totals, each

    def stats(self) -> dict[str, float]:
        """Every function's counters, as "<name>/<counter>"."""
        return {f"{r.name}/{k}": v for r in self.rewards for k, v in r.stats().items()}

    def reset_stats(self) -> None:
        for r in self.rewards:
            r.reset_stats()
