"""S2 in-domain continued pre-training: every component learns, on e-commerce data mixed with open-domain data."""

from __future__ import annotations

from typing import Any

from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage, present


class DomainCPTStage(OmniStage):
    """S2 of the Valley3 recipe: continued pre-training of the whole model on a 2:1 e-commerce : open-domain
    mixture with audio replay (the mixture is the data config's; see `valley3.data.mixture`).

    Args:
        model: the network.
        default_lr: learning rate of every component `lr` does not name.
        lr: per-component overrides (0 freezes); default `{vision: 2e-6}` (LLaVA-OneVision trains the vision
            tower at a fifth of the language model's rate). `{}` gives every component `default_lr`.
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest example in tokens (the report packs to 32,768).
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, video, ...).
    """

    def __init__(
        self,
        model: OmniModel,
        default_lr: float = 1e-5,
        lr: dict[str, float] | None = None,
        warmup_steps: int = 100,
        max_len: int | None = 32768,
        **kwargs: Any,
    ):
        lr = present(model, vision=2e-6) if lr is None else lr
        super().__init__(model, lr=lr, default_lr=default_lr, warmup_steps=warmup_steps, max_len=max_len, **kwargs)
