"""Policy.from_checkpoint: a stage checkpoint (as `valley3 fit` saves it) -> the same model and processor."""

from __future__ import annotations

import pytest
import torch

from valley3.policy import Policy

from ..conftest import tiny_omni


def _model_config() -> dict:
    """The `model` hyperparameter LightningCLI saves for configs/model/tiny_omni.yaml (class_path/init_args)."""
    def part(path, **init_args):
        return {"class_path": path, "init_args": init_args}

    return part(
        "valley3.models.OmniModel",
        decoder=part("valley3.models.decoders.HFDecoder", preset="tiny-qwen3"),
        vision=part("valley3.models.vision.SigLIPEncoder", preset="tiny-siglip"),
        vision_connector=part("valley3.models.connectors.MLPConnector", depth=2),
        audio=part("valley3.models.audio.WhisperEncoder", preset="tiny-whisper"),
        audio_connector=part("valley3.models.connectors.AudioMLPConnector", depth=3),
    )


def test_from_checkpoint_rebuilds_model_and_processor(tmp_path, media):
    from valley3.policy import build_processor

    source = tiny_omni(seed=3).eval()
    processor = build_processor(source, system_prompt="Be brief.")
    hparams = {"_class_path": "valley3.stages.OmniStage", "model": _model_config(), "system_prompt": "Be brief.",
               "max_len": 256, "max_tiles": 1, "video": None,
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}
    state = {f"model.{k}": v for k, v in source.state_dict().items()}
    torch.save({"hyper_parameters": hparams, "state_dict": state}, tmp_path / "last.ckpt")
    policy = Policy.from_checkpoint(tmp_path / "last.ckpt")
    assert not policy.model.training and policy.processor.max_len == 256
    loaded = policy.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    # Built without random init (the checkpoint has every weight), and the decoder's tie restored after.
    decoder = policy.model.decoder.model
    assert decoder.lm_head.weight is decoder.model.embed_tokens.weight
    prompt = {"messages": [{"role": "user", "content": "<image>Colour?"}], "images": [media["red"]]}
    assert policy.prompt_ids(prompt) == Policy(source, processor).prompt_ids(prompt)
    ours = policy.generate([prompt], max_new_tokens=4, temperature=0)[0][0]
    theirs = Policy(source, processor).generate([prompt], max_new_tokens=4, temperature=0)[0][0]
    assert ours.token_ids == theirs.token_ids


def test_a_checkpoint_without_a_model_config_is_a_clear_error(tmp_path):
    torch.save({"hyper_parameters": {"lr": None}, "state_dict": {}}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="no model config"):
        Policy.from_checkpoint(tmp_path / "bare.ckpt")
