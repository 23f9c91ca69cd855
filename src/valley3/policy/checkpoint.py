"""A Lightning checkpoint of any stage -> its OmniModel (rebuilt from the saved config) and processor, no stage class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser

from valley3.data.processor import OmniProcessor, VideoSpec
from valley3.models.omni import OmniModel
from valley3.policy.prompts import build_processor


def load_model_and_processor(ckpt_path: str | Path) -> tuple[OmniModel, OmniProcessor]:
    """Rebuild the model from the checkpoint's `model` hyperparameter (the class_path/init_args config LightningCLI
    saves), build its processor from the stage's `system_prompt`, `max_tiles`, `video` and `max_len`, and load the
    weights (`weights_only=True`, every tensor must match).

    Reading the config instead of the stage class keeps this below stages/: any stage's checkpoint loads the same way.
    """
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hparams: dict[str, Any] = checkpoint.get("hyper_parameters") or {}
    config = hparams.get("model")
    if not isinstance(config, dict) or "class_path" not in config:
        raise ValueError(
            f"{ckpt_path}: the checkpoint's hyperparameters hold no model config (its stage was built in Python "
            "around a model object); train through `valley3 fit` so the checkpoint can rebuild its model"
        )
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--model", type=OmniModel)
    model = parser.instantiate_classes(parser.parse_object({"model": config})).model
    processor = build_processor(model, hparams.get("system_prompt", "You are a helpful assistant."),
                                hparams.get("max_tiles", 1), VideoSpec(**(hparams.get("video") or {})))
    processor.max_len = hparams.get("max_len")  # a longer prompt is refused, never truncated
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model, processor
