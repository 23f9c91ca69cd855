"""Judge reward: a rubric prompt per completion, sent to a judge model (local or HTTP), its score parsed."""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from valley3.rewards.base import Prompt, Reward, RewardContext, question_of, reference_of
from valley3.rewards.rule_rewards import answer_of

log = logging.getLogger(__name__)

# An OpenAI chat message: {"role": ..., "content": str | [parts]}.
Message = dict[str, Any]

DEFAULT_RUBRIC = (
    "You grade an assistant's answer to a shopping question.\n"
    "Question: {question}\n"
    "Reference answer: {reference}\n"
    "Assistant's answer: {answer}\n"
    "Judge correctness against the reference, faithfulness to the product, and clarity. "
    "Reply with one line 'Score: N', where N is an integer from {low} to {high}."
)
_SCORE = re.compile(r"score\s*[:=]?\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
# Control tokens written out in a decoded answer (<|im_end|>, <|image_pad|>, ...): not text a judge should read, and
# a judge's own tokenizer would read them as its control tokens.
_CONTROL = re.compile(r"<\|[^|<>]{1,40}\|>")


class JudgeBackend(ABC):
    """Runs chat requests on a judge model. `complete` returns the reply text per request, or None for a
    request that failed (unreachable, timed out, refused) after the backend's own retries."""

    @abstractmethod
    def complete(self, requests: Sequence[list[Message]], max_tokens: int, temperature: float) -> list[str | None]:
        """One reply (or None) per request, in order."""

    def close(self) -> None:
        """Release connections or models (optional)."""


def parse_score(reply: str, low: float, high: float) -> float | None:
    """The last "Score: N" of a judge reply (a bare number when it is the whole reply), or None when there is
    none or it lies outside [low, high]."""
    found = _SCORE.findall(reply)
    if not found and re.fullmatch(r"\s*-?\d+(?:\.\d+)?\s*", reply):
        found = [reply.strip()]
    if not found:
        return None
    value = float(found[-1])
    return value if low <= value <= high else None


class JudgeReward(Reward):
    """A judge model grades each completion against a rubric; its score, mapped from [low, high] to [0, 1], is
    the reward.

    A request the backend could not serve, or a reply without a score in range, is a counted failure
    (`failures/unreachable`, `failures/garbage`): its reward is 0, it is logged, and training goes on.

    Args:
        backend: where the judge runs (`HTTPJudge`, `PolicyJudge`, `HFJudge`).
        rubric: the prompt; `{question}`, `{reference}`, `{answer}`, `{low}` and `{high}` are filled in.
        low: the lowest score the rubric asks for.
        high: the highest.
        max_tokens: the judge's reply budget.
        temperature: the judge's sampling temperature (0 = greedy).
        strip_thinking: grade only the answer after a `<thinking>` block.
        name: the logged name.
    """

    def __init__(self, backend: JudgeBackend, rubric: str = DEFAULT_RUBRIC, low: float = 0, high: float = 10,
                 max_tokens: int = 16, temperature: float = 0.0, strip_thinking: bool = True, name: str = "judge"):
        super().__init__()
        if not low < high:
            raise ValueError(f"the score range needs low < high, got [{low}, {high}]")
        self.backend, self.rubric, self.low, self.high = backend, rubric, low, high
        self.max_tokens, self.temperature, self.strip_thinking = max_tokens, temperature, strip_thinking
        self.name = name

    def request(self, prompt: Prompt, completion: str) -> list[Message]:
        """The judge's chat request for one completion."""
        answer = _CONTROL.sub("", answer_of(completion) if self.strip_thinking else completion)
        reference = reference_of(prompt)
        text = self.rubric.format(question=question_of(prompt), answer=answer, low=self.low, high=self.high,
                                  reference="(none)" if reference is None else answer_of(reference))
        return [{"role": "user", "content": text}]

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        return self.batch([prompt], [completion], [context])[0]

    def batch(self, prompts: Sequence[Prompt], completions: Sequence[str],
              contexts: Sequence[RewardContext]) -> list[float]:
        requests = [self.request(p, c) for p, c in zip(prompts, completions, strict=True)]
        replies = self.backend.complete(requests, self.max_tokens, self.temperature)
        if len(replies) != len(requests):
            raise RuntimeError(f"judge backend gave {len(replies)} replies to {len(requests)} requests")
        rewards = []
        self.counts["calls"] += len(requests)
        self.counts["failures"] += 0  # logged every step, 0 included: a curve, not a gap
        for reply in replies:
            value = None if reply is None else parse_score(reply, self.low, self.high)
            if value is None:
                reason = "unreachable" if reply is None else "garbage"
                self.counts[f"failures/{reason}"] += 1
                self.counts["failures"] += 1
                seen = self.counts[f"failures/{reason}"]
                if seen <= 5 or seen % 100 == 0:  # a dead judge fails every request: log a few, count them all
                    shown = None if reply is None else reply[:200]
                    log.warning("judge %s: %s reply %r scored 0", self.name, reason, shown)
                rewards.append(0.0)
            else:
                rewards.append((value - self.low) / (self.high - self.low))
        return rewards
