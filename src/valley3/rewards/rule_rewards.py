"""Rule rewards for GRPO: format (one thinking block, then an answer), answer accuracy, length penalty, token share."""

from __future__ import annotations

from valley3.rewards.base import Prompt, Reward, RewardContext, reference_of
from valley3.rewards.rule import SCORERS, RuleScorer

THINK_OPEN, THINK_CLOSE = "<thinking>", "</thinking>"


def split_thinking(text: str) -> tuple[str | None, str, bool]:
    """(thinking, answer, well_formed) of a reasoning output.

    Well formed: optional whitespace, exactly one `<thinking>...</thinking>` block, then a non-empty answer.
    Without a block the whole text is the answer (thinking None).
    """
    # A small parser of our own until valley3.reasoning.parse_thinking lands; this is the one place to swap.
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    if opens == 0 and closes == 0:
        return None, text.strip(), False
    head, _, rest = text.partition(THINK_OPEN)
    thinking, found, answer = rest.partition(THINK_CLOSE)
    if not found:
        return thinking.strip(), "", False
    well_formed = opens == 1 and closes == 1 and not head.strip() and bool(answer.strip())
    return thinking.strip(), answer.strip(), well_formed


def answer_of(text: str) -> str:
    """The part of an output a correctness reward scores: after the thinking block when there is one."""
    return split_thinking(text)[1]


class FormatReward(Reward):
    """1.0 for exactly one `<thinking>` block at the start followed by a non-empty answer, else 0.0.

    Args:
        name: the logged name.
    """

    def __init__(self, name: str = "format"):
        super().__init__()
        self.name = name

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        return float(split_thinking(completion)[2])


class AnswerReward(Reward):
    """The answer (after any thinking) scored against the prompt record's final assistant turn by a rule:
    exact match, option letter, or JSON attribute F1 (`valley3.rewards.rule`). A record without a reference
    scores 0 and is counted (`no_reference`).

    Args:
        kind: "exact", "choice", "json" or "auto" (chosen per reference).
        name: the logged name.
    """

    def __init__(self, kind: str = "auto", name: str = "accuracy"):
        super().__init__()
        if kind not in SCORERS:
            raise ValueError(f"kind must be one of {SCORERS}, got {kind!r}")
        self.rule, self.name = RuleScorer(kind), name

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        reference = reference_of(prompt)
        if reference is None:
            self.counts["no_reference"] += 1
            return 0.0
        return self.rule.score(answer_of(completion), answer_of(reference))


class LengthPenalty(Reward):
    """DAPO's soft overlong punishment: 0 up to `max_tokens - buffer` tokens, then falling linearly to -1 at
    `max_tokens` (the generation budget when None), -1 beyond or when cut at the budget.

    Args:
        buffer: the tokens before the limit over which the penalty grows.
        max_tokens: the limit (default: the context's `max_new_tokens`).
        name: the logged name.
    """

    def __init__(self, buffer: int = 64, max_tokens: int | None = None, name: str = "length"):
        super().__init__()
        if buffer < 1:
            raise ValueError(f"buffer must be at least 1 token, got {buffer}")
        self.buffer, self.max_tokens, self.name = buffer, max_tokens, name

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        limit = self.max_tokens or context.max_new_tokens
        if limit is None:
            raise ValueError("LengthPenalty needs max_tokens or a context with max_new_tokens")
        if context.finish_reason == "length" or context.num_tokens >= limit:
            return -1.0
        start = limit - self.buffer
        return 0.0 if context.num_tokens <= start else (start - context.num_tokens) / self.buffer


class TokenShareReward(Reward):
    """The share of a completion's tokens that are `text`'s token(s) (end-of-turn excluded); 0 for an empty one.

    A dense, deterministic reward for checking that a trainer learns (the toy GRPO task, `benchmarks/grpo_toy.py`).

    Args:
        text: the target (a word that is one token, e.g. "red").
        tokenizer: the tokenizer folder that splits `text` (default: the project's tiny tokenizer).
        name: the logged name.
    """

    def __init__(self, text: str, tokenizer: str | None = None, name: str = "token_share"):
        super().__init__()
        from transformers import AutoTokenizer

        from valley3.assets import tiny_tokenizer_dir

        self.name = name
        self.targets = frozenset(AutoTokenizer.from_pretrained(tokenizer or tiny_tokenizer_dir())(
            text, add_special_tokens=False)["input_ids"])

    def score(self, prompt: Prompt, completion: str, context: RewardContext) -> float:
        ids = context.token_ids
        return sum(i in self.targets for i in ids) / len(ids) if ids else 0.0
