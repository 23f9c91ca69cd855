"""P1 controllable-reasoning cold start: SFT on `<thinking>` answers tagged with an effort level."""

from __future__ import annotations

from typing import Any

from valley3.models.omni import OmniModel
from valley3.reasoning.effort import effort_levels
from valley3.stages.base import OmniStage


class ReasoningSFTStage(OmniStage):
    """Post-training step 1 of the Valley3 recipe: every component learns to answer `<thinking>...</thinking>`
    + response, as long as a sample's effort level asks (its `"effort"` puts the level's block into the system
    prompt; the thinking should grow with the level).

    Args:
        model: the network.
        efforts: the effort level set: a preset name ("release": minimal/medium/high; "five": none/minimal/low/
            medium/high) or a dict of `valley3.reasoning.EffortLevels` fields, e.g. `{levels: [{name: low,
            description: ...}, ...], line: "Reasoning: {name}"}`. Inference must use the same set (chat and
            evaluation read it from the checkpoint).
        train_thinking: False trains only the markers and the answer, not the text inside the thinking block.
        default_lr: learning rate of every component `lr` does not name.
        lr: per-component overrides (0 freezes), e.g. `{vision: 2e-6}`.
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest example in tokens.
        max_new_tokens: generation length in `predict_step` (thinking included).
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, video, ...).
    """

    def __init__(
        self,
        model: OmniModel,
        efforts: str | dict[str, Any] | None = "release",
        train_thinking: bool = True,
        default_lr: float = 1e-5,
        lr: dict[str, float] | None = None,
        warmup_steps: int = 50,
        max_len: int | None = 32768,
        max_new_tokens: int = 2048,
        **kwargs: Any,
    ):
        super().__init__(model, lr=lr, default_lr=default_lr, warmup_steps=warmup_steps, max_len=max_len,
                         max_new_tokens=max_new_tokens, **kwargs)
        self.processor.template.efforts = effort_levels(efforts)
        self.processor.template.train_thinking = train_thinking
