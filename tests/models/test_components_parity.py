"""Each wrapped encoder equals its transformers / timm reference on the same weights, fed the reference's own
input layout; checkpoints load from local files only."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen3OmniMoeConfig,
    Siglip2VisionModel,
    SiglipVisionModel,
    WhisperConfig,
)
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VisionTransformerPretrainedModel
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
    Qwen3OmniMoeAudioEncoder,
    _get_feat_extract_output_lengths,
)
from transformers.models.siglip2.image_processing_siglip2 import convert_image_to_patches
from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

from valley3.models.audio import AuTEncoder, WhisperEncoder
from valley3.models.presets import AUDIO, VISION
from valley3.models.vision import EagleEncoder, QwenViTEncoder, SigLIP2Encoder, SigLIPEncoder, TimmViTEncoder

TOL = dict(atol=1e-5, rtol=0)
TIMM_TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2, "reg_tokens": 2}


def _copy(reference: torch.nn.Module, wrapped: torch.nn.Module) -> torch.nn.Module:
    reference.load_state_dict(wrapped.state_dict())
    return reference.eval()


@torch.no_grad()
def test_siglip_matches_transformers():
    torch.manual_seed(0)
    enc = SigLIPEncoder("tiny-siglip").eval()
    ref = _copy(SiglipVisionModel(enc.model.config), enc.model)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(enc(x), ref(pixel_values=x).last_hidden_state, **TOL)


@torch.no_grad()
def test_siglip2_matches_transformers_naflex_layout():
    torch.manual_seed(0)
    enc = SigLIP2Encoder("tiny-siglip2", image_size=48).eval()  # a 6x6 grid from the 4x4 position table
    ref = _copy(Siglip2VisionModel(enc.model.config), enc.model)
    x = torch.randn(2, 3, 48, 48)
    patches = torch.stack([convert_image_to_patches(img, 8) for img in x])  # Siglip2ImageProcessor's layout
    out = ref(pixel_values=patches, pixel_attention_mask=torch.ones(2, 36, dtype=torch.long),
              spatial_shapes=torch.tensor([[6, 6], [6, 6]])).last_hidden_state
    torch.testing.assert_close(enc(x), out, **TOL)


@torch.no_grad()
def test_qwen_vit_matches_transformers_with_its_processor_layout():
    torch.manual_seed(0)
    enc = QwenViTEncoder("tiny-qwen2.5-vit", image_size=32).eval()
    ref = _copy(Qwen2_5_VisionTransformerPretrainedModel(enc.model.config), enc.model)
    x = torch.randn(2, 3, 40, 72)  # 10x18 patches, 5x9 merged tokens, several attention windows
    flat, rows, cols = Qwen2VLImageProcessor().patchify(x, patch_size=4, merge_size=2, temporal_patch_size=2)
    out = ref(flat.reshape(-1, flat.shape[-1]), grid_thw=torch.tensor([[1, rows, cols]] * 2)).pooler_output
    torch.testing.assert_close(enc(x), out.view(2, 45, -1), **TOL)


def test_qwen_vit_loads_the_visual_tower_of_a_local_qwen2_5_vl_checkpoint(tmp_path):
    torch.manual_seed(0)
    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                num_key_value_heads=1, rope_parameters={"rope_type": "default", "rope_theta": 1e4,
                                                        "mrope_section": [2, 3, 3]})
    vision = dict(VISION["tiny-qwen2.5-vit"], out_hidden_size=32)
    full = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision))
    full.save_pretrained(tmp_path)
    enc = QwenViTEncoder(path=str(tmp_path), image_size=32)
    for name, tensor in full.model.visual.state_dict().items():
        assert torch.equal(enc.model.state_dict()[name], tensor), name


@torch.no_grad()
def test_timm_vit_matches_timm_and_loads_a_safetensors_file(tmp_path):
    torch.manual_seed(0)
    enc = TimmViTEncoder("vit_tiny_patch16_224", TIMM_TINY).eval()
    ref = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, global_pool="", **TIMM_TINY)
    _copy(ref, enc.model)
    x = torch.randn(2, 3, 32, 32)
    out = enc(x)
    assert out.shape == (2, 16, 32)  # class and register tokens dropped
    torch.testing.assert_close(out, ref.forward_features(x)[:, ref.num_prefix_tokens :], **TOL)
    with_head = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, **TIMM_TINY)
    with_head.load_state_dict(enc.model.state_dict(), strict=False)
    save_file(with_head.state_dict(), tmp_path / "vit.safetensors")  # a classifier checkpoint: head ignored
    loaded = TimmViTEncoder("vit_tiny_patch16_224", TIMM_TINY, checkpoint=str(tmp_path / "vit.safetensors")).eval()
    torch.testing.assert_close(loaded(x), out, **TOL)


@torch.no_grad()
def test_whisper_matches_transformers_on_a_padded_window():
    torch.manual_seed(0)
    enc = WhisperEncoder("tiny-whisper").eval()
    ref = _copy(HFWhisperEncoder(WhisperConfig(**AUDIO["tiny-whisper"])), enc.model)
    mel = torch.randn(1, 80, 130)
    hidden = ref(F.pad(mel, (0, 200 - 130))).last_hidden_state
    pooled = F.avg_pool1d(hidden.transpose(1, 2), 2, 2).transpose(1, 2)[0]
    torch.testing.assert_close(enc(mel, torch.tensor([130])), pooled[: enc.num_tokens(130)], **TOL)


@torch.no_grad()
def test_aut_matches_transformers_and_its_length_formula():
    torch.manual_seed(0)
    enc = AuTEncoder("tiny-aut").eval()
    ref = _copy(Qwen3OmniMoeAudioEncoder(enc.model.config), enc.model)
    lengths = torch.tensor([250, 130])
    mel = torch.randn(2, 80, 250)
    flat = torch.cat([mel[0, :, :250], mel[1, :, :130]], dim=1)  # transformers' input: clips along time
    out = ref(input_features=flat, feature_lens=lengths).last_hidden_state
    torch.testing.assert_close(enc(mel, lengths), out, **TOL)
    assert out.shape[0] == enc.num_tokens(250) + enc.num_tokens(130) == 33 + 17
    for frames in range(1, 1001):
        assert enc.num_tokens(frames) == int(_get_feat_extract_output_lengths(torch.tensor(frames), 50)), frames
    assert enc.seconds_to_tokens(60.0) == 60 * 13


def test_aut_loads_the_audio_tower_of_a_local_qwen3_omni_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = AuTEncoder("tiny-aut")
    Qwen3OmniMoeConfig(thinker_config={"audio_config": AUDIO["tiny-aut"]}).save_pretrained(tmp_path)
    tower = {f"thinker.audio_tower.{k}": v.contiguous() for k, v in source.model.state_dict().items()}
    save_file({**tower, "thinker.lm_head.weight": torch.zeros(2, 2)}, tmp_path / "model-00001-of-00001.safetensors")
    loaded = AuTEncoder(path=str(tmp_path))
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor), name


@torch.no_grad()
def test_eagle_is_both_towers_concatenated_in_their_own_channels():
    torch.manual_seed(0)
    primary = SigLIPEncoder("tiny-siglip").eval()
    secondary = QwenViTEncoder("tiny-qwen2.5-vit", image_size=32, min_tokens=25).eval()  # sees 40x40: 5x5 tokens
    eagle = EagleEncoder(primary, secondary)
    x = torch.randn(2, 3, 32, 32)
    out = eagle(x)
    assert eagle.grid(32, 32) == ((4, 4), (5, 5)) and out.shape == (2, 16 + 25, 32 + 32)
    torch.testing.assert_close(out[:, :16, :32], primary(x), **TOL)
    assert not out[:, :16, 32:].any() and not out[:, 16:, :32].any()

    def stats(values):
        return torch.tensor(values).view(1, 3, 1, 1)

    raw = x * stats(primary.image_std) + stats(primary.image_mean)
    resized = F.interpolate(raw, size=(40, 40), mode="bicubic", align_corners=False, antialias=True)
    expected = secondary((resized - stats(secondary.image_mean)) / stats(secondary.image_std))
    torch.testing.assert_close(out[:, 16:, 32:], expected, **TOL)
