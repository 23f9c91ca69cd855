"""Every vision encoder x connector (Eagle included), every decoder and both audio encoders train one step on
CPU from their tiny configs, and each produces exactly the number of tokens its num_tokens predicts."""

from __future__ import annotations

import functools
import importlib
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.cli import LightningArgumentParser

from valley3.data.collate import PadCollator
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel
from valley3.models.audio import AudioEncoder
from valley3.models.connectors import ConvAdapter, MLPConnector, PixelShuffleConnector, VisualVocabConnector
from valley3.models.decoders import HFDecoder
from valley3.models.vision import EagleEncoder, QwenViTEncoder, SigLIPEncoder, TimmViTEncoder, VisionEncoder
from valley3.stages import OmniStage

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "model"
VISION = ["tiny_siglip", "tiny_siglip2", "tiny_qwen_vit", "tiny_timm_vit", "tiny_eagle"]
CONNECTORS = ["mlp2x_gelu", "pixel_shuffle", "conv_adapter", "visual_vocab"]
DECODERS = ["tiny_qwen2", "tiny_qwen3", "tiny_llama", "tiny_gemma3"]
AUDIO = ["tiny_whisper", "tiny_aut"]


def _build(folder: str, name: str, base: type):
    parser = LightningArgumentParser()
    parser.add_subclass_arguments(base, "obj")
    return parser.instantiate_classes(parser.parse_args([f"--obj={CONFIGS / folder / name}.yaml"])).obj


def _connector(name: str):
    """A connector config as the factory OmniModel calls with (encoder width, decoder width)."""
    spec = yaml.safe_load((CONFIGS / "connector" / f"{name}.yaml").read_text())
    module_name, _, cls_name = spec["class_path"].rpartition(".")
    return functools.partial(getattr(importlib.import_module(module_name), cls_name), **spec.get("init_args", {}))


def _model(vision=None, connector="mlp2x_gelu", decoder="tiny_qwen3", audio=None) -> OmniModel:
    torch.manual_seed(0)
    return OmniModel(
        _build("decoder", decoder, HFDecoder),
        vision=_build("vision", vision, VisionEncoder) if vision else None,
        vision_connector=_connector(connector),
        audio=_build("audio", audio, AudioEncoder) if audio else None,
    )


def _train_one_step(model: OmniModel, samples: list[Sample]) -> dict:
    stage = OmniStage(model, default_lr=1e-3)
    batch = PadCollator(stage.processor.pad_id)([stage.processor(s) for s in samples])
    optimizer = stage.configure_optimizers()["optimizer"]
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss, count = stage.model_step(batch)  # raises PlaceholderMismatch if a count is off
    loss.backward()
    assert count > 0 and torch.isfinite(loss)
    no_grad = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"no gradient reached {no_grad[:5]}"
    optimizer.step()
    for name, module in model.components().items():
        changed = any(not torch.equal(p, before[f"{name}.{n}"]) for n, p in module.named_parameters())
        assert changed, f"{name} did not change after one optimizer step"
    return batch


def _image_samples(media) -> list[Sample]:
    return [
        Sample("one", [Turn("user", "<image>What is it?"), Turn("assistant", "A red box.")],
               [MediaRef("image", media["red"])]),
        Sample("two", [Turn("user", "<image><image>Compare."), Turn("assistant", "Red, then blue.")],
               [MediaRef("image", media["red"]), MediaRef("image", media["blue"])]),
    ]


def _check_image_tokens(model: OmniModel, batch: dict) -> None:
    """Per picture (sizes differ under native resolution): features out == the processor's num_tokens."""
    placeholders = 0
    for px in batch.media.pixel_values:
        h, w = px.shape[-2:]
        with torch.no_grad():
            features = model.vision_connector(model.vision(px[None]), model.vision.grid(h, w))
        assert features.shape == (1, model.image_num_tokens(h, w), model.decoder.hidden_size)
        placeholders += features.shape[1]
    assert int((batch.input_ids == model.token_ids["image"]).sum()) == placeholders


CASES = [(v, c, "tiny_qwen3") for v in VISION for c in CONNECTORS]
CASES += [("tiny_siglip", "mlp2x_gelu", d) for d in DECODERS if d != "tiny_qwen3"]


@pytest.mark.parametrize("vision,connector,decoder", CASES, ids=["-".join(c) for c in CASES])
def test_vision_connector_decoder_trains_one_step(vision, connector, decoder, media):
    model = _model(vision, connector, decoder)
    batch = _train_one_step(model, _image_samples(media))
    _check_image_tokens(model, batch)


@pytest.mark.parametrize("audio", AUDIO)
def test_audio_encoder_trains_one_step(audio, media):
    model = _model(audio=audio)
    samples = [
        Sample("tone", [Turn("user", "<audio>Say it."), Turn("assistant", "A tone.")],
               [MediaRef("audio", media["tone"])]),
        Sample("long", [Turn("user", "<audio>And this?"), Turn("assistant", "Lower.")],
               [MediaRef("audio", media["long"])]),
    ]
    batch = _train_one_step(model, samples)
    lengths = batch.media.audio_lengths
    with torch.no_grad():
        features = model.audio(batch.media.audio_features, lengths)
    assert features.shape[0] == sum(model.audio_num_tokens(n) for n in lengths.tolist())
    assert features.shape[0] == int((batch.input_ids == model.token_ids["audio"]).sum())


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("size", [(40, 72), (72, 24), (8, 8)])
def test_native_resolution_counts_match_features(connector, size):
    """Qwen2.5-ViT keeps aspect ratios: counts follow the rounded grid, alone and as Eagle's second tower."""
    torch.manual_seed(0)
    qwen = QwenViTEncoder("tiny-qwen2.5-vit", image_size=32)
    eagle = EagleEncoder(TimmViTEncoder("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "embed_dim": 32,
                                                                   "depth": 1, "num_heads": 2}), qwen)
    for encoder in (qwen, eagle):
        h, w = encoder.input_size(*size)
        grid = encoder.grid(h, w)
        project = _connector(connector)(encoder.embed_dim, 16)
        with torch.no_grad():
            out = project(encoder(torch.randn(2, 3, h, w)), grid)
        assert out.shape == (2, project.num_tokens(grid), 16)
    assert qwen.grid(*size) == qwen.grid(*qwen.input_size(*size))  # rounding is idempotent
    assert qwen.grid(40, 72) == (5, 9) and eagle.grid(32, 32) == ((4, 4), (4, 4))


def test_qwen_vit_encodes_a_batch_of_several_sizes_in_one_tower_pass_equal_to_one_pass_per_size():
    # Under FSDP every rank must call the tower equally often: one pass per batch, whatever its sizes. Each
    # picture alone is checked against transformers with its own processor layout in test_components_parity.py.
    torch.manual_seed(0)
    model = OmniModel(HFDecoder("tiny-qwen3"), vision=QwenViTEncoder("tiny-qwen2.5-vit", image_size=32)).eval()
    pictures = [torch.randn(3, 16, 24), torch.randn(3, 8, 8), torch.randn(3, 16, 24), torch.randn(3, 24, 8)]
    calls = []
    hook = model.vision.model.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        features, per_picture = model._encode_pictures(pictures)
        assert len(calls) == 1 and per_picture == [6, 1, 6, 3]
        alone = [model.vision_connector(model.vision(p.unsqueeze(0)), model.vision.grid(*p.shape[-2:]))[0]
                 for p in pictures]
    hook.remove()
    torch.testing.assert_close(features, torch.cat(alone), atol=1e-5, rtol=1e-5)


def test_conv_adapter_gives_196_tokens_per_siglip_384_tile_like_valley2():
    adapter = ConvAdapter(8, 16)
    x = torch.randn(2, 27 * 27, 8)
    out = adapter(x, (27, 27))
    assert adapter.num_tokens((27, 27)) == 196 and out.shape == (2, 196, 16)
    # Valley2's reference: MLP, then the conv over the [B, D, 27, 27] map, flattened row-major.
    ref = adapter.conv(adapter.mlp(x).reshape(2, 27, 27, 16).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).reshape(2, -1, 16)
    torch.testing.assert_close(out, ref)


def test_pixel_shuffle_merges_2x2_blocks_and_pads_odd_grids():
    shuffle = PixelShuffleConnector(4, 6, depth=1)
    x = torch.randn(1, 5 * 3, 4)
    out = shuffle(x, (5, 3))
    assert shuffle.num_tokens((5, 3)) == 3 * 2 == out.shape[1]
    grid = x.view(5, 3, 4)
    first = torch.cat([grid[0, 0], grid[0, 1], grid[1, 0], grid[1, 1]])
    last = torch.cat([grid[4, 2], torch.zeros(4), torch.zeros(4), torch.zeros(4)])  # bottom-right, padded
    torch.testing.assert_close(out[0, 0], shuffle.net(first))
    torch.testing.assert_close(out[0, -1], shuffle.net(last))


def test_visual_vocab_tokens_are_mixtures_of_the_table():
    vocab = VisualVocabConnector(4, 6, vocab_size=10, stride=1)
    out = vocab(torch.randn(2, 9, 4), (3, 3))
    probs = vocab.logits(torch.randn(1, 4)).softmax(-1)
    assert out.shape == (2, 9, 6) and torch.allclose(probs.sum(-1), torch.ones(1))
    assert VisualVocabConnector(4, 6, vocab_size=10).num_tokens((27, 27)) == 196


def test_multi_part_grids_map_each_part_on_its_own():
    for connector in (PixelShuffleConnector(4, 6), ConvAdapter(4, 6), VisualVocabConnector(4, 6, vocab_size=8)):
        a, b = torch.randn(1, 16, 4), torch.randn(1, 9, 4)
        joint = connector(torch.cat([a, b], dim=1), ((4, 4), (3, 3)))
        torch.testing.assert_close(joint, torch.cat([connector(a, (4, 4)), connector(b, (3, 3))], dim=1))
        with pytest.raises(ValueError, match="grid"):
            connector(a)
    assert MLPConnector(4, 6).num_tokens(((4, 4), (3, 3))) == 25 and MLPConnector(4, 6).num_tokens(7) == 7


def test_fixed_resolution_encoders_reject_other_sizes():
    with pytest.raises(ValueError, match="32x32"):
        SigLIPEncoder("tiny-siglip").grid(48, 32)
    assert SigLIPEncoder("tiny-siglip").input_size(480, 640) == (32, 32)
