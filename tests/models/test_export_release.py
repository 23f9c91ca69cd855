"""valley_omni exports the Valley3 release loads and serves unchanged: processor, chat template, ties, token ids."""

from __future__ import annotations

import json
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from valley3.data.batch import Media
from valley3.data.collate import PadCollator
from valley3.data.media import load_audio, load_image, load_video
from valley3.data.media.video import load_video_audio
from valley3.data.processor import VideoSpec
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel, valley_omni
from valley3.models.audio import AuTEncoder
from valley3.models.decoders import Qwen3VLDecoder
from valley3.models.export import export
from valley3.stages.base import build_processor
from valley3.stages.hf_export import export_with_processor

from .release_like import TOKEN_NAMES, ListTiedQwen3VL, ReleaseLikeProcessor, qwen3_vl_like_tokenizer
from .test_audio_in_video import write_video

FPS = 2
PROMPT = "<image>Look <image> and <audio> then <video>What is it?"


def _tiny(tied: bool = True, **decoder) -> OmniModel:
    torch.manual_seed(0)
    config = None if tied else {"tie_word_embeddings": False}
    return OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", config=config, min_pixels=32 * 32 * 4, **decoder),
                     audio=AuTEncoder("tiny-aut")).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory, media) -> dict[str, str]:
    from PIL import Image

    root = tmp_path_factory.mktemp("release_media")
    Image.new("RGB", (96, 64), (10, 120, 240)).save(root / "sized.png")  # already Qwen-sized: no resampling
    return {"sized": str(root / "sized.png"), "red": media["red"], "tone": media["tone"],
            "video": write_video(root / "v.mp4", 2.0, 2.0)}


def _content(interleave: bool) -> list[dict]:
    """PROMPT as chat content items; without interleaving the video's track is an audio item after it."""
    items = [{"type": "image"}, {"type": "text", "text": "Look "}, {"type": "image"}, {"type": "text", "text": " and "},
             {"type": "audio"}, {"type": "text", "text": " then "}, {"type": "video"}]
    return items + ([] if interleave else [{"type": "audio"}]) + [{"type": "text", "text": "What is it?"}]


@pytest.mark.parametrize("interleave", [True, False], ids=["audio_in_video", "separate_audio"])
def test_a_processor_built_from_the_export_as_the_release_does_equals_valley3s(files, tmp_path, interleave):
    model = _tiny()
    ours = build_processor(model, video=VideoSpec(fps=FPS, audio_in_video=interleave))
    refs = [MediaRef("image", files["sized"]), MediaRef("image", files["red"]), MediaRef("audio", files["tone"]),
            MediaRef("video", files["video"])]
    example = ours(Sample("s", [Turn("user", PROMPT)], refs), generation=True)
    folder = export_with_processor(model, ours, tmp_path / "export")

    release = ReleaseLikeProcessor.from_pretrained(folder)
    text = release.apply_chat_template([{"role": "user", "content": _content(interleave)}], tokenize=False,
                                       add_generation_prompt=True)
    clip = load_video(files["video"], fps=FPS, max_frames=ours.video.max_frames)
    tone, track = load_audio(files["tone"], 16000), load_video_audio(files["video"], 16000)
    out = release(text, images=[load_image(files["sized"]), load_image(files["red"])], videos=[clip.frames.numpy()],
                  audio=[tone.numpy(), track.numpy()])

    assert out["input_ids"][0].tolist() == example.input_ids.tolist()
    rows = [model.decoder.patchify(p[None])[0] for p in example.pixel_values]
    n = rows[0].shape[0]
    torch.testing.assert_close(out["pixel_values"][:n], rows[0], atol=1e-6, rtol=0)
    # The resized image: valley3 resamples with PIL, the release's default image processor with torchvision
    # (use_fast=False selects PIL there too): at most one 8-bit level apart after normalisation.
    assert (out["pixel_values"][n:] - rows[1]).abs().max() <= 2 / 255 + 1e-6
    torch.testing.assert_close(out["pixel_values_videos"], model.decoder.patchify(example.video_pixels[0])[0],
                               atol=1e-6, rtol=0)
    _assert_mel_equal(out, example.audio_features)
    _assert_positions_equal(model, example, out, json.loads((folder / "config.json").read_text()), interleave)


def _assert_mel_equal(out: dict, ours: list[torch.Tensor]) -> None:
    """Each clip's valid frames equal; a clip the call zero-pads to a longer one differs in its last frame only (the
    release's extractor pads the wave before its STFT, where valley3 reflects the clip's own end)."""
    lengths = out["feature_attention_mask"].sum(-1).tolist()
    assert lengths == [mel.shape[-1] for mel in ours]
    for features, n, mel in zip(out["input_features"], lengths, ours):
        end = n if n == max(lengths) else n - 1
        torch.testing.assert_close(features[:, :end], mel[:, :end], atol=1e-5, rtol=0)


def _assert_positions_equal(model, example, out, config, interleave) -> None:
    """transformers' Qwen3-Omni get_rope_index, with the exported config's ids and time scale, on the release-side
    inputs equals valley3's TM-RoPE ids."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoePreTrainedModelForConditionalGeneration as Omni,
    )

    names = ("image_token_id", "video_token_id", "audio_token_id", "vision_start_token_id", "audio_start_token_id",
             "position_id_per_seconds")
    fields = SimpleNamespace(**{k: config[k] for k in names}, audio_config=SimpleNamespace(n_window=50))
    fake = SimpleNamespace(config=fields, spatial_merge_size=2)
    fake.get_llm_pos_ids_for_vision = partial(Omni.get_llm_pos_ids_for_vision, fake)
    ref, _ = Omni.get_rope_index(fake, out["input_ids"], out["image_grid_thw"], out["video_grid_thw"],
                                 torch.ones_like(out["input_ids"]), use_audio_in_video=interleave,
                                 audio_seqlens=out["feature_attention_mask"].sum(-1),
                                 second_per_grids=out["video_second_per_grid"])
    batch = PadCollator(0)([example])
    grids = {"image": out["image_grid_thw"], "video": out["video_grid_thw"]}
    positions, _ = model.decoder.rope_ids(batch.input_ids, model.token_ids, grids, batch.media.video_timestamps,
                                          batch.media.video_frames)
    assert torch.equal(ref.long(), positions)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_tied_and_untied_exports_load_into_a_model_declaring_its_tied_keys_as_a_list(media, tmp_path, tied):
    model = _tiny(tied)
    processor = build_processor(model)
    assert (model.decoder.model.lm_head.weight is model.decoder.model.get_input_embeddings().weight) == tied
    folder = export_with_processor(model, processor, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["text_config"]["tie_word_embeddings"] is False
    assert isinstance(config["position_id_per_seconds"], int) and config["position_id_per_seconds"] == 25
    loaded = ListTiedQwen3VL.from_pretrained(folder).eval()
    example = processor(Sample("s", [Turn("user", "<image>What is it?"), Turn("assistant", "Red.")],
                               [MediaRef("image", media["red"])]))
    batch = PadCollator(processor.pad_id)([example])
    rows, grid = model.decoder.patchify(batch.media.pixel_values[0][None])
    ids = batch.input_ids
    theirs = {"input_ids": ids, "attention_mask": batch.attention_mask, "pixel_values": rows,
              "image_grid_thw": torch.tensor([grid]), "mm_token_type_ids": (ids == model.token_ids["image"]).long()}
    with torch.no_grad():
        ours = model(ids, batch.attention_mask, media=Media(pixel_values=batch.media.pixel_values))
        assert torch.equal(ours, loaded(**theirs).logits)
    # What the release hit before: config.json saying "tied" makes transformers 5 call .keys() on the list.
    config["tie_word_embeddings"] = True
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(AttributeError, match="'list' object has no attribute 'keys'"):
        ListTiedQwen3VL.from_pretrained(folder)


def test_the_exported_chat_template_renders_as_valley3s_processor(tmp_path, media):
    model = _tiny()
    processor = build_processor(model)
    folder = export_with_processor(model, processor, tmp_path / "export")
    release = ReleaseLikeProcessor.from_pretrained(folder)
    assert {name: getattr(release, name) for name in TOKEN_NAMES} == valley_omni.token_attributes(model)
    turns = [Turn("user", "Hi <audio>"), Turn("assistant", "A tone."), Turn("user", "And <image>?"),
             Turn("assistant", "Red.")]
    refs = [MediaRef("audio", media["tone"]), MediaRef("image", media["red"])]
    for system in (None, "Be brief."):
        sample = Sample("s", ([Turn("system", system)] if system else []) + turns, refs)
        messages = [{"role": t.role, "content": t.content} for t in sample.turns]  # valley3's <tags> kept in strings
        text = release.apply_chat_template(messages, tokenize=False)
        out = release(text, images=[load_image(media["red"])], audio=[load_audio(media["tone"], 16000).numpy()])
        assert out["input_ids"][0].tolist() == processor(sample).input_ids.tolist()
        assert text.startswith("<|im_start|>system\n" + (system or "You are a helpful assistant.") + "<|im_end|>\n")


@pytest.fixture(scope="module")
def qwen3_vl_tokenizer(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("qwen3_vl_tokenizer")
    qwen3_vl_like_tokenizer(folder)
    return str(folder)


def test_a_qwen3_vl_tokenizer_gets_the_release_ids_and_exports_them(qwen3_vl_tokenizer, tmp_path):
    model = _tiny(tokenizer=qwen3_vl_tokenizer)
    processor = build_processor(model)
    tok = processor.tokenizer.convert_tokens_to_ids
    assert processor.token_ids == {"image": 151655, "video": 151656, "audio": 151675}
    assert [tok(t) for t in ("<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos_single>")] == [
        151669, 151670, 151671, 151674]
    assert (tok("<thinking>"), tok("</thinking>")) == (151676, 151677)  # valley3's own tokens come after
    folder = export_with_processor(model, processor, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert {k: config[f"{k}_token_id"] for k in valley_omni.RELEASE_IDS} == valley_omni.RELEASE_IDS
    release = ReleaseLikeProcessor.from_pretrained(folder)
    named = {name: release.tokenizer.convert_tokens_to_ids(getattr(release, name)) for name in TOKEN_NAMES}
    assert named == {"image_token": 151655, "video_token": 151656, "audio_token": 151675, "vision_bos_token": 151652,
                     "vision_eos_token": 151653, "audio_bos_token": 151669, "audio_eos_token": 151670}


def test_a_qwen3_vl_tokenizer_with_other_audio_ids_is_refused_at_export(qwen3_vl_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(qwen3_vl_tokenizer)
    # The layout valley3 wrote before: audio tokens appended in a row (the placeholder at 151671).
    tokenizer.add_special_tokens({"extra_special_tokens": ["<|audio_start|>", "<|audio_end|>", "<|audio_pad|>"]},
                                 replace_extra_special_tokens=False)
    model = _tiny(tokenizer=qwen3_vl_tokenizer)
    model.bind_tokenizer({k: tokenizer.convert_tokens_to_ids(t) for k, t in model.media_tokens.items()},
                         len(tokenizer))
    with pytest.raises(ValueError, match=r"'audio': 151671.*release uses \{'audio': 151675\}"):
        export(model, tmp_path / "export", tokenizer=tokenizer)
    assert not (tmp_path / "export" / "model.safetensors").exists()
