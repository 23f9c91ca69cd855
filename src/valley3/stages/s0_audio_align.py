"""S0 audio-language alignment: only the audio connector learns."""

from __future__ import annotations

from typing import Any

from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage


class AudioAlignStage(OmniStage):
    """S0 of the Valley3 recipe: audio-text pairs teach the audio connector to speak the frozen
    vision-language model's language; the decoder, the vision path and the audio encoder stay frozen.

    Args:
        model: the network; it must have an audio encoder and connector.
        connector_lr: learning rate of the audio connector (the only trained component): a fresh projector; the
            report does not publish its value, LLaVA-style alignment uses 1e-3.
        warmup_steps: linear warm-up steps before cosine decay.
        max_len: longest example in tokens (the report uses 8,192).
        **kwargs: other `OmniStage` arguments (init_from, system_prompt, video, ...).
    """

    def __init__(
        self,
        model: OmniModel,
        connector_lr: float = 1e-3,
        warmup_steps: int = 50,
        max_len: int | None = 8192,
        **kwargs: Any,
    ):
        if model.audio_connector is None:
            raise ValueError("S0 (audio alignment) trains the audio connector; this model has no audio encoder")
        lr = {name: 0.0 for name in model.components()} | {"audio_connector": connector_lr}
        # A checkpoint's hyperparameters carry the lr table this class built; anything else is a config error.
        if kwargs.pop("lr", None) not in (None, lr):
            raise ValueError("S0 trains only the audio connector; set connector_lr, not lr")
        super().__init__(model, lr=lr, warmup_steps=warmup_steps, max_len=max_len, **kwargs)
