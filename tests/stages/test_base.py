"""OmniStage: per-component learning rates and freezing, the trainable table, init_from a previous stage."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from safetensors.torch import save_file

from valley3.stages import OmniStage

from ..conftest import tiny_omni


def test_lr_per_component_and_zero_freezes():
    stage = OmniStage(tiny_omni(), lr={"vision": 0, "audio_connector": 1e-3}, default_lr=1e-4)
    groups = {g["name"]: g["lr"] for g in stage.configure_optimizers()["optimizer"].param_groups}
    assert groups["audio_connector"] == 1e-3 and groups["decoder"] == 1e-4
    assert not any(name.startswith("vision.") or name == "vision" for name in groups)
    assert not any(p.requires_grad for p in stage.model.vision.parameters())
    table = stage.trainable_table()
    assert "| vision | 23,840 | 0 | 0 |" in table
    with pytest.raises(ValueError, match="unknown component.*'projector'"):
        OmniStage(tiny_omni(), lr={"projector": 1e-3})


def test_init_from_a_lightning_checkpoint_and_from_safetensors(tmp_path):
    source = OmniStage(tiny_omni(seed=1))
    trainer = L.Trainer(max_steps=0, logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.strategy.connect(source)
    ckpt = tmp_path / "s.ckpt"
    trainer.save_checkpoint(ckpt)
    tensors = tmp_path / "s.safetensors"
    save_file({k: v.clone() for k, v in source.model.state_dict().items()}, tensors)  # tied weights: copies
    for path in (ckpt, tensors):
        target = OmniStage(tiny_omni(seed=2), init_from=str(path))
        for (name, a), b in zip(source.model.state_dict().items(), target.model.state_dict().values()):
            assert torch.equal(a, b), (path.suffix, name)


def test_init_from_a_file_with_no_matching_tensor_is_an_error(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"encoder.layer.0.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="none of its 1 tensors matches"):
        OmniStage(tiny_omni(), init_from=str(path))


def test_val_and_test_loss_are_the_token_mean_over_the_whole_epoch():
    # Two batches of different sizes and supervised token counts: a mean of batch means (weighted by rows, as
    # Lightning's default is) differs from the mean over every supervised token of the epoch.
    from valley3.data.collate import PadCollator
    from valley3.data.schema import Sample, Turn

    stage = OmniStage(tiny_omni())
    sample = lambda i, answer: Sample(f"s{i}", [Turn("user", f"Question {i}?"), Turn("assistant", answer)])
    collate = PadCollator(stage.processor.pad_id)
    batches = [collate([stage.processor(sample(0, "Red."))]),
               collate([stage.processor(sample(1, "A long answer with many more tokens in it than the other.")),
                        stage.processor(sample(2, "Blue box, tall."))])]
    with torch.no_grad():
        sums = [stage._loss_sum(b) for b in batches]
    token_mean = float(sum(t for t, _ in sums) / sum(c for _, c in sums))
    row_mean = float(sum(t / c * b.input_ids.shape[0] for (t, c), b in zip(sums, batches)) / 3)
    assert abs(token_mean - row_mean) > 1e-3  # the two definitions really differ on these batches
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    loader = torch.utils.data.DataLoader(batches, batch_size=None)
    assert trainer.validate(stage, loader, verbose=False)[0]["val/loss"] == pytest.approx(token_mean, rel=1e-5)
    assert trainer.test(stage, loader, verbose=False)[0]["test/loss"] == pytest.approx(token_mean, rel=1e-5)
    assert trainer.validate(stage, loader, verbose=False)[0]["val/loss"] == pytest.approx(token_mean, rel=1e-5)  # reset
