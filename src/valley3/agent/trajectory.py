"""A tool-use trajectory: its conversation, completion ids and loss mask; training examples and batches of them."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from lightning.fabric.utilities.apply_func import move_data_to_device

from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.processor import IGNORE_INDEX, Example, OmniProcessor
from valley3.data.schema import Sample
from valley3.policy import Policy

FINISHES = ("answer", "max_turns", "max_tokens", "length", "invalid")


class ContinuityError(RuntimeError):
    """The template's rendering of a conversation does not extend the ids of its shorter prefix."""


@dataclass
class Trajectory:
    """One rollout: the conversation, its completion ids after the prompt, and what happened on the way.

    `token_ids`, `text`, `finish_reason` and `logprobs` mirror `valley3.policy.Completion`, so rewards and trainers
    written for single-turn completions read a trajectory too; `loss_mask` marks the model's tokens (1) and the
    environment's (0).
    """

    prompt: Sample  # the conversation the rollout started from
    sample: Sample  # the whole conversation: prompt turns, assistant turns, tool turns (with their images)
    prompt_ids: list[int]
    token_ids: list[int] = field(default_factory=list)  # everything after the prompt, as the template renders it
    loss_mask: list[int] = field(default_factory=list)  # 1 = an assistant token, 0 = a tool response / scaffolding
    logprobs: list[float] = field(default_factory=list)  # sampled log-probs where the mask is 1, else 0.0
    finish: str = ""  # one of FINISHES
    turns: int = 0  # assistant turns
    tool_calls: int = 0  # calls run (the call limit's refusals not counted)
    errors: list[str] = field(default_factory=list)  # kinds: ERROR_KINDS of failed calls, "call_limit", finishes
    messages: list[str] = field(default_factory=list)  # the documented error messages, in order
    retokenized: int = 0  # assistant turns whose sampled ids differ from the template's tokenization of their text
    text: str = ""  # the completion's text (decoded `token_ids`, special tokens kept)

    @property
    def finish_reason(self) -> str:
        """As a Completion's: "eos" when the trajectory ended with an answer, "length" when a limit cut it."""
        return "eos" if self.finish == "answer" else "length"

    @property
    def failed_calls(self) -> int:
        return sum(kind not in FINISHES for kind in self.errors)

    @property
    def answer(self) -> str | None:
        """The final answer (the last assistant turn without its thinking block), None unless finish is "answer"."""
        if self.finish != "answer":
            return None
        return re.sub(r"<thinking>.*?</thinking>", "", self.sample.turns[-1].content, flags=re.S).strip()

    def example(self, processor: OmniProcessor) -> Example:
        """The training example: prompt + completion ids, labels where the mask is 1, media of the whole conversation
        (tool images included). Raises ContinuityError unless the processor renders the conversation to these ids."""
        full = processor(self.sample)
        ids = self.prompt_ids + self.token_ids
        if full.input_ids[: len(ids)].tolist() != ids:
            raise ContinuityError(f"sample {self.sample.id!r}: the rendered conversation differs from the rollout ids")
        labels = [t if m else IGNORE_INDEX for t, m in zip(self.token_ids, self.loss_mask)]
        return dataclasses.replace(full, input_ids=full.input_ids[: len(ids)].clone(),
                                   labels=full.labels.new_tensor([IGNORE_INDEX] * len(self.prompt_ids) + labels))


def trajectory_batch(policy: Policy, trajectories: Sequence[Trajectory],
                     loss_masks: Sequence[Sequence[int]] | None = None) -> Batch:
    """A right-padded batch of whole trajectories on the policy's device: prompt + completion ids, labels where the
    mask (default each trajectory's `loss_mask`) is 1, and every image of each conversation, tool photos included
    (what `Policy.completion_batch` gives for single-turn completions, whose media are the prompt's)."""
    examples = []
    for i, t in enumerate(trajectories):
        example = t.example(policy.processor)
        if loss_masks is not None:
            if len(loss_masks[i]) != len(t.token_ids):
                raise ValueError(f"trajectory {i}: {len(t.token_ids)} tokens but a loss mask of {len(loss_masks[i])}")
            labels = [tok if m else IGNORE_INDEX for tok, m in zip(t.token_ids, loss_masks[i])]
            example.labels[len(t.prompt_ids):] = example.labels.new_tensor(labels)
        examples.append(dataclasses.replace(example, sample_id=f"{example.sample_id}#{i}"))
    return move_data_to_device(PadCollator(policy.processor.pad_id)(examples), policy.device)
