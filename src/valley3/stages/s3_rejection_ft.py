"""S3 rejection-sampling fine-tuning: every component learns, on S2 data the S2 model neither always solves nor always fails."""

from __future__ import annotations

from typing import Any

from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage, present


class RejectionFTStage(OmniStage):
    """S3 of the Valley3 recipe: fine-tunes the whole model on the samples `valley3 data reject-sample` kept
    (pass rate of the S2 model strictly between always-wrong and always-right), with long sequences.

    Args:
        model: the network.
        default_lr: learning rate of every component `lr` does not name (annealing: the last stage sees the best
            data at a lower peak).
        lr: per-component overrides (0 freezes); default `{vision: 1e-6}` (LLaVA-OneVision trains the vision
            tower at a fifth of the language model's rate). `{}` gives every component `default_lr`.
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest example in tokens (the report packs to 65,536).
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, video, ...).
    """

    def __init__(
        self,
        model: OmniModel,
        default_lr: float = 5e-6,
        lr: dict[str, float] | None = None,
        warmup_steps: int = 50,
        max_len: int | None = 65536,
        **kwargs: Any,
    ):
        lr = present(model, vision=1e-6) if lr is None else lr
        super().__init__(model, lr=lr, default_lr=default_lr, warmup_steps=warmup_steps, max_len=max_len, **kwargs)
