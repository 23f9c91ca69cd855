"""OmniModel: media features land exactly on their placeholders, gradients reach what trains, generate works."""

from __future__ import annotations

import pytest
import torch

from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.processor import AudioSpec, OmniProcessor
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import PlaceholderMismatch
from valley3.stages import OmniStage
from valley3.stages.base import masked_loss

from ..conftest import tiny_omni


def _samples(media: dict[str, str]) -> list[Sample]:
    return [
        Sample(
            "omni",
            [Turn("user", "<image>Listen: <audio> What is shown?"), Turn("assistant", "A red box.")],
            [MediaRef("image", media["red"]), MediaRef("audio", media["long"])],
        ),
        Sample(
            "two-images",
            [Turn("user", "<image><image>Compare."), Turn("assistant", "Red, then blue.")],
            [MediaRef("image", media["red"]), MediaRef("image", media["blue"])],
        ),
        Sample("audio", [Turn("user", "<audio>Say it."), Turn("assistant", "A tone.")], [MediaRef("audio", media["tone"])]),
        Sample("text", [Turn("user", "Hi"), Turn("assistant", "Hello.")]),
    ]


def _batch(stage: OmniStage, samples: list[Sample], **kw) -> Batch:
    return PadCollator(stage.processor.pad_id, **kw)([stage.processor(s, generation="padding_side" in kw) for s in samples])


def test_features_fill_every_placeholder_and_counts_match_num_tokens(stage, media):
    batch = _batch(stage, _samples(media))
    model, ids = stage.model, batch.input_ids
    images = model.vision_connector(model.vision(batch.media.pixel_values))
    audio = model.audio(batch.media.audio_features, batch.media.audio_lengths)
    assert images.shape[0] * images.shape[1] == int((ids == model.token_ids["image"]).sum()) == 3 * 16
    # 4.7 s -> 470 frames = two 200-frame windows (50 tokens each) + 70 frames (17 tokens); 1.3 s -> 130 frames -> 32.
    assert audio.shape[0] == int((ids == model.token_ids["audio"]).sum()) == 50 + 50 + 17 + 32
    embeds = model.embed(batch.input_ids, batch.media)
    where = (ids == model.token_ids["image"]).nonzero()
    first = where[0]
    expected = model.vision_connector(model.vision(batch.media.pixel_values[:1]))[0, 0]
    torch.testing.assert_close(embeds[first[0], first[1]], expected)


def test_every_trainable_parameter_gets_a_gradient(stage, media):
    loss, count = stage.model_step(_batch(stage, _samples(media)))
    loss.backward()
    assert count > 0 and torch.isfinite(loss)
    for name, p in stage.model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, name
    for name, module in stage.model.components().items():
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters()), name


def test_frozen_components_get_no_gradient(media):
    stage = OmniStage(tiny_omni(), lr={"vision": 0, "audio": 0, "decoder": 0})
    loss, _ = stage.model_step(_batch(stage, _samples(media)))
    loss.backward()
    for name in ("vision", "audio", "decoder"):
        assert all(p.grad is None for p in stage.model.components()[name].parameters()), name
    for name in ("vision_connector", "audio_connector"):
        assert all(p.grad is not None for p in stage.model.components()[name].parameters()), name
    optimised = {g["name"] for g in stage.configure_optimizers()["optimizer"].param_groups}
    assert {n.split(".")[0] for n in optimised} == {"vision_connector", "audio_connector"}


def test_loss_is_mean_over_all_supervised_tokens():
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, 1, 2, -100, -100], [-100, -100, -100, -100, 3]])
    total, count = masked_loss(logits, labels)
    per_token = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), labels[:, 1:].reshape(-1), reduction="none")
    assert count == 3
    torch.testing.assert_close(total / count, per_token[labels[:, 1:].reshape(-1) != -100].mean())


def test_placeholder_mismatch_names_the_sample(stage, media):
    spec = stage.processor.audio
    wrong = AudioSpec(spec.sampling_rate, spec.n_mels, spec.n_fft, spec.hop_length, lambda n: spec.num_tokens(n) + 1)
    processor = OmniProcessor(stage.processor.tokenizer, stage.processor.template, stage.processor.image, wrong)
    samples = _samples(media)
    batch = PadCollator(processor.pad_id)([processor(s) for s in samples])
    with pytest.raises(PlaceholderMismatch, match="omni: \\d+ placeholders"):
        stage.model_step(batch)
    with pytest.raises(PlaceholderMismatch) as err:
        stage.model_step(batch)
    assert "omni" in str(err.value) and "two-images" not in str(err.value)


def test_generate_with_cache_equals_greedy_without_cache(stage, media):
    samples = _samples(media)[:3]
    batch = _batch(stage, samples, padding_side="left")
    steps = 5
    out = stage.model.generate(batch.input_ids, batch.attention_mask, max_new_tokens=steps,
                               min_new_tokens=steps, media=batch.media)
    ids, mask = batch.input_ids, batch.attention_mask
    for _ in range(steps):  # greedy decoding by full forward passes, no cache
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        logits = stage.model(ids, attention_mask=mask, position_ids=positions, media=batch.media)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        ids, mask = torch.cat([ids, nxt], 1), torch.cat([mask, torch.ones_like(nxt)], 1)
    assert torch.equal(out, ids[:, -steps:])
    texts = stage.generate_text(batch, max_new_tokens=4)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)


def test_equal_totals_with_features_shifted_between_samples_still_raise(stage, media):
    samples = _samples(media)[:2]  # one image in the first sample, two in the second
    batch = _batch(stage, samples)
    ids, image = batch.input_ids, stage.model.token_ids["image"]
    # Move one placeholder from the second sample into the first: totals stay equal, samples do not.
    first_text = (ids[0] != image) & (batch.labels[0] == -100) & (batch.attention_mask[0] == 1)
    ids[0, first_text.nonzero()[0, 0]] = image
    ids[1, (ids[1] == image).nonzero()[0, 0]] = stage.processor.pad_id
    with pytest.raises(PlaceholderMismatch, match="omni: 17 placeholders, 16 features; two-images: 31"):
        stage.model_step(batch)
