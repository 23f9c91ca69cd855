"""P3a agentic SFT: trajectories of (think -> tool call -> tool response) x N -> answer; tool responses never trained."""

from __future__ import annotations

from typing import Any

from valley3.data.schema import Turn
from valley3.data.templates import ChatTemplate, Segment
from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage

# Every error message a tool turn carries starts so (valley3.agent.tools, valley3.agent.rollout).
ERROR_PREFIX = "Error:"


class FailedCallsUntrained(ChatTemplate):
    """The chat template, except that an assistant turn whose tool call was answered with an error message is not
    trained: the data may show a failed call and the recovery after it, but the model should not learn the failure.

    Renders exactly the same text as the template it wraps; only the `trained` flags differ.

    Args:
        template: the template to wrap.
    """

    def __init__(self, template: ChatTemplate):
        super().__init__(template.tokens, template.default_system, template.efforts, template.train_thinking)

    def segments(self, turns: list[Turn], add_generation_prompt: bool = False, effort: str | None = None) -> list[Segment]:
        failed = iter([_answered_by_error(turns, i) for i, t in enumerate(turns) if t.role == "assistant"])
        header = f"{self.tokens.im_start}assistant\n"
        out, untrained = [], False
        for s in super().segments(turns, add_generation_prompt, effort):
            if not s.data and s.text.startswith(self.tokens.im_start):  # a turn's first segment: which turn is next
                untrained = s.text == header and next(failed, False)
            out.append(Segment(s.text, False, s.data) if untrained else s)
        return out


def _answered_by_error(turns: list[Turn], i: int) -> bool:
    return i + 1 < len(turns) and turns[i + 1].role == "tool" and turns[i + 1].content.startswith(ERROR_PREFIX)


class AgenticSFTStage(OmniStage):
    """P3a of the Valley3 recipe: fine-tunes every component on tool-use trajectories (messages with assistant tool
    calls and `tool` turns, see `valley3.data.templates`). Tool responses are the environment's words: the template
    renders them as untrained user turns, so their tokens (and their images) never carry loss.

    Args:
        model: the network.
        default_lr: learning rate of every component `lr` does not name.
        lr: per-component overrides (0 freezes).
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest trajectory in tokens (tool responses with images are long).
        mask_failed_calls: leave assistant turns whose call got an error message ("Error: ...") out of the loss.
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, ...).
    """

    def __init__(self, model: OmniModel, default_lr: float = 1e-5, lr: dict[str, float] | None = None,
                 warmup_steps: int = 20, max_len: int | None = 16384, mask_failed_calls: bool = True, **kwargs: Any):
        super().__init__(model, lr=lr, default_lr=default_lr, warmup_steps=warmup_steps, max_len=max_len, **kwargs)
        if mask_failed_calls:
            self.processor.template = FailedCallsUntrained(self.processor.template)
