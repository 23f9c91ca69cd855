"""Tiling, native resolution and video through the processor, collators and model: placeholders == features."""

from __future__ import annotations

import json
import os

import lightning as L
import pytest
import torch
from lightning.pytorch.plugins.precision import HalfPrecision
from PIL import Image

from valley3.data.collate import PadCollator
from valley3.data.datamodules import VideoDataModule
from valley3.data.media import TileGrid, tile_grid
from valley3.data.packing import PackingCollator, cost_of
from valley3.data.processor import VideoSpec
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.models.vision import QwenViTEncoder
from valley3.stages import OmniStage
from valley3.stages.base import build_processor

from ..conftest import tiny_omni
from .test_video import _write as write_video

VIDEO = {"num_frames": 4}  # 4 of the clip's 30 frames at 10 fps: sources 3, 11, 18, 26


def _image(tmp_path, name: str, size: tuple[int, int], colour=(200, 30, 30)) -> str:
    path = tmp_path / f"{name}.png"
    Image.new("RGB", size, colour).save(path)
    return str(path)


def _ask(name: str, kind: str, *paths: str) -> Sample:
    tags = f"<{kind}>" * len(paths)
    return Sample(name, [Turn("user", f"{tags}What is it?"), Turn("assistant", "A red box.")],
                  [MediaRef(kind, p) for p in paths])


def _count(batch: dict, model: OmniModel, kind: str) -> int:
    return int((batch.input_ids == model.token_ids[kind]).sum())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("videos")
    (root / "corrupt.mp4").write_bytes(os.urandom(4096))
    return {"clip": write_video(root / "clip.mp4"), "silent": write_video(root / "silent.mp4", audio=False),
            "corrupt": str(root / "corrupt.mp4")}


def test_a_single_3_2_image_becomes_its_grid_plus_a_thumbnail_in_one_run(tmp_path):
    stage = OmniStage(tiny_omni(), max_tiles=9)
    path = _image(tmp_path, "wide", (96, 64))
    assert tile_grid(96, 64, 32, 9) == TileGrid(rows=2, cols=3)  # the best-ratio rule: 3:2 exactly
    ex = stage.processor(_ask("wide", "image", path))
    assert len(ex.pixel_values) == 6 + 1 and all(px.shape == (3, 32, 32) for px in ex.pixel_values)
    ids = ex.input_ids.tolist()
    tok = stage.processor.tokenizer.convert_tokens_to_ids
    start = ids.index(tok("<|vision_start|>"))
    assert ids.count(tok("<|vision_start|>")) == 1
    assert ids[start + 1 : start + 1 + 7 * 16] == [stage.processor.token_ids["image"]] * (7 * 16)
    assert ids[start + 1 + 7 * 16] == tok("<|vision_end|>")
    batch = PadCollator(stage.processor.pad_id)([ex])
    features, per_item = stage.model._encode_pictures(batch.media.pixel_values)
    assert features.shape[0] == _count(batch, stage.model, "image") == 112 and per_item == [16] * 7
    loss, _ = stage.model_step(batch)  # raises PlaceholderMismatch if the counts differ
    assert torch.isfinite(loss)


def test_a_two_image_sample_is_not_tiled(tmp_path):
    stage = OmniStage(tiny_omni(), max_tiles=9)
    wide = _image(tmp_path, "wide", (96, 64))
    ex = stage.processor(_ask("two", "image", wide, wide))
    assert len(ex.pixel_values) == 2
    assert int((ex.input_ids == stage.processor.token_ids["image"]).sum()) == 2 * 16
    assert len(OmniStage(tiny_omni()).processor(_ask("one", "image", wide)).pixel_values) == 1  # max_tiles=1: off


def test_native_resolution_images_of_different_sizes_share_a_batch(tmp_path):
    torch.manual_seed(0)
    model = OmniModel(HFDecoder("tiny-qwen3"), vision=QwenViTEncoder("tiny-qwen2.5-vit", image_size=32))
    stage = OmniStage(model)
    paths = [_image(tmp_path, "a", (48, 40)), _image(tmp_path, "b", (20, 70), (30, 30, 200)),
             _image(tmp_path, "c", (48, 40), (30, 200, 30))]
    examples = [stage.processor(_ask(f"s{i}", "image", p)) for i, p in enumerate(paths)]
    sizes = [tuple(ex.pixel_values[0].shape[-2:]) for ex in examples]
    assert sizes == [(40, 48), (72, 16), (40, 48)] and sizes[1] == model.vision.input_size(70, 20)  # not squares
    batch = PadCollator(stage.processor.pad_id)(examples)
    assert isinstance(batch.media.pixel_values, list)  # sizes differ: one picture per entry, grouped in the model
    _, per_item = model._encode_pictures(batch.media.pixel_values)
    placeholders = (batch.input_ids == model.token_ids["image"]).sum(1).tolist()
    assert per_item == placeholders == [5 * 6, 9 * 2, 5 * 6]
    embeds = model.embed(batch.input_ids, batch.media)
    for row, px in enumerate(batch.media.pixel_values):  # features land in order although sizes were grouped
        alone = model.vision_connector(model.vision(px[None]), model.vision.grid(*px.shape[-2:]))[0]
        torch.testing.assert_close(embeds[row][batch.input_ids[row] == model.token_ids["image"]], alone)
    loss, _ = stage.model_step(batch)
    loss.backward()
    assert torch.isfinite(loss)


def test_video_placeholders_equal_frame_features_and_audio_follows_only_when_the_track_exists(videos):
    stage = OmniStage(tiny_omni(), video=VIDEO)
    processor, model = stage.processor, stage.model
    clip = processor(_ask("clip", "video", videos["clip"]))
    silent = processor(_ask("silent", "video", videos["silent"]))
    assert clip.video_pixels[0].shape == (4, 3, 32, 32)
    torch.testing.assert_close(clip.video_timestamps[0], torch.tensor([0.3, 1.1, 1.8, 2.6], dtype=torch.float64))
    assert len(clip.audio_features) == 1 and not silent.audio_features
    ids, tok = clip.input_ids.tolist(), processor.tokenizer.convert_tokens_to_ids
    end = ids.index(tok("<|vision_end|>"))
    assert ids[end - 4 * 16 : end] == [processor.token_ids["video"]] * 64
    assert ids[end + 1] == tok("<|audio_start|>")  # the track's run right after the video's
    assert tok("<|audio_start|>") not in silent.input_ids.tolist()
    batch = PadCollator(processor.pad_id)([clip, silent])
    assert batch.media.video_frames.tolist() == [4, 4] and batch.media.video_owner.tolist() == [0, 1]
    assert batch.media.video_pixels.shape == (8, 3, 32, 32) and len(batch.media.video_timestamps) == 8
    # bf16-true casts a batch's float tensors: the pixels go to bf16, the frame times stay exact (2.6 s in bf16 is
    # 2.59375 s, and its TM-RoPE time id at 25 ids/s would drop from 65 to 64).
    cast = HalfPrecision("bf16-true").convert_input(batch)
    assert cast.media.video_pixels.dtype == torch.bfloat16
    assert cast.media.video_timestamps == batch.media.video_timestamps == pytest.approx([0.3, 1.1, 1.8, 2.6] * 2)
    features, _ = model._encode_pictures(batch.media.video_pixels)
    assert features.shape[0] == _count(batch, model, "video") == 2 * 64
    assert _count(batch, model, "audio") == model.audio_num_tokens(clip.audio_features[0].shape[-1])
    assert torch.isfinite(stage.model_step(batch)[0])
    muted = build_processor(model, video=VideoSpec(num_frames=4, audio=False))
    assert not muted(_ask("clip", "video", videos["clip"])).audio_features
    assert cost_of(clip).video_frames == 4


def test_a_video_datamodule_trains_one_step_and_counts_a_corrupt_video(videos, tmp_path):
    stage = OmniStage(tiny_omni(), video=VIDEO)
    records = [{"id": name, "messages": [{"role": "user", "content": "<video>What happens?"},
                                         {"role": "assistant", "content": "Colours change."}], "videos": [videos[name]]}
               for name in ("clip", "silent", "corrupt")]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    dm = VideoDataModule(train=str(path), batch_size=3)
    dm.connect(stage.processor)
    with pytest.warns(UserWarning, match="skipping sample 'corrupt'"):
        batch = next(iter(dm.train_dataloader()))
    assert int(batch.skipped) == 1 and batch.sample_ids and "corrupt" not in batch.sample_ids
    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    with pytest.warns(UserWarning, match="skipping sample"):
        trainer.fit(stage, dm)
    assert trainer.global_step == 1
    images = tmp_path / "i.jsonl"
    images.write_text(json.dumps({"messages": [{"role": "user", "content": "<image>?"},
                                               {"role": "assistant", "content": "x"}], "images": [videos["clip"]]}))
    with pytest.raises(ValueError, match="VideoDataModule takes no \\['image'\\]"):
        VideoDataModule(train=str(images)).read("train")


def test_packed_equals_padded_loss_on_a_batch_holding_a_video(videos, media):
    stage = OmniStage(tiny_omni(), video=VIDEO)
    samples = [_ask("video", "video", videos["clip"]), _ask("image", "image", media["red"]),
               Sample("text", [Turn("user", "Hi"), Turn("assistant", "Hello there.")])]
    examples = [stage.processor(s) for s in samples]
    packed = PackingCollator(stage.processor.pad_id)(examples)
    padded = PadCollator(stage.processor.pad_id)(examples)
    assert packed.media.video_owner.tolist() == [0] and packed.media.image_owner.tolist() == [1]
    packed_loss, packed_count = stage.model_step(packed)
    padded_loss, padded_count = stage.model_step(padded)
    assert int(packed_count) == int(padded_count)
    assert abs(float(packed_loss.detach()) - float(padded_loss.detach())) <= 1e-5
