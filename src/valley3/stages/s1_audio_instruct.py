"""S1 audio instruction fine-tuning: every component learns, on audio QA with a little image-text."""

from __future__ import annotations

from typing import Any

from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage, present


class AudioInstructStage(OmniStage):
    """S1 of the Valley3 recipe: the whole model trains on audio QA and sound events, with a small share of
    image-text data so vision is not forgotten (the share is the data mixture's, not this class's).

    Args:
        model: the network.
        default_lr: learning rate of every component `lr` does not name (full fine-tuning of a pretrained VLM;
            LLaVA-OneVision uses 1e-5).
        lr: per-component overrides (0 freezes); default `{vision: 2e-6}` (LLaVA-OneVision trains the vision
            tower at a fifth of the language model's rate). `{}` gives every component `default_lr`.
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest example in tokens (the report uses 8,192).
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, video, ...).
    """

    def __init__(
        self,
        model: OmniModel,
        default_lr: float = 1e-5,
        lr: dict[str, float] | None = None,
        warmup_steps: int = 50,
        max_len: int | None = 8192,
        **kwargs: Any,
    ):
        lr = present(model, vision=2e-6) if lr is None else lr
        super().__init__(model, lr=lr, default_lr=default_lr, warmup_steps=warmup_steps, max_len=max_len, **kwargs)
