"""Costs from headers and metadata equal the decoded examples' on every modality and model family."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from valley3.data.datamodules import OmniDataModule
from valley3.data.datamodules.base import SampleDataset
from valley3.data.media import MediaError
from valley3.data.media.probe import audio_length, image_size, probe_video, resampled_length
from valley3.data.pack_index import measure
from valley3.data.packing import PackBudget, cost_of
from valley3.data.processor import SampleError, VideoSpec
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel
from valley3.models.audio import AuTEncoder
from valley3.models.decoders import HFDecoder, Qwen3VLDecoder
from valley3.models.vision import QwenViTEncoder
from valley3.stages.base import build_processor

from ..conftest import tiny_omni
from .zoo import write_zoo

IMAGES = ("png", "wide_png", "jpeg_turned", "jpeg_upside_down", "jpeg_large", "png_exif", "png_late_exif",
          "webp_turned", "gif")
AUDIO = ("wav", "wav_8k", "wav_stereo_44k", "flac", "ogg", "mp3", "m4a", "webm_opus", "wav_too_short")
VIDEOS = ("mp4", "mp4_48k_stereo", "mp4_silent", "mp4_turned", "mp4_upside_down", "mkv", "webm")
NEEDS_DECODE = {"png_late_exif": 1, "webm_opus": 1, "webm": 1}  # metadata cannot tell; decoded and counted


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return write_zoo(tmp_path_factory.mktemp("zoo"))


def _families():
    torch.manual_seed(0)
    qwen_vit = OmniModel(HFDecoder("tiny-qwen3"), vision=QwenViTEncoder("tiny-qwen2.5-vit", image_size=32))
    valley3 = OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", min_pixels=32 * 32 * 4), audio=AuTEncoder("tiny-aut"))
    return {
        "siglip+whisper": build_processor(tiny_omni(), video=VideoSpec(num_frames=4)),
        "siglip+whisper tiled, fps": build_processor(tiny_omni(), max_tiles=9, video=VideoSpec(fps=4, max_frames=6)),
        "qwen2.5-vit native": build_processor(qwen_vit, video=VideoSpec(num_frames=3)),
        "qwen3-vl+aut": build_processor(valley3, video=VideoSpec(num_frames=3)),  # odd frames: pairs padded
        "qwen3-vl+aut, fps": build_processor(valley3, video=VideoSpec(fps=3, max_frames=5)),
    }


@pytest.fixture(scope="module", params=list(_families()))
def processor(request):
    return _families()[request.param]


def _ask(name: str, *media: tuple[str, str]) -> Sample:
    tags = "".join(f"<{kind}>" for kind, _ in media)
    turns = [Turn("user", f"{tags}What is shown here, in a few words?"), Turn("assistant", "A product photo.")]
    return Sample(name, turns, [MediaRef(kind, path) for kind, path in media], source=f"zoo:{name}")


def _samples(zoo) -> list[Sample]:
    samples = [_ask(k, ("image", zoo[k])) for k in IMAGES] + [_ask(k, ("audio", zoo[k])) for k in AUDIO]
    samples += [_ask(k, ("video", zoo[k])) for k in VIDEOS]
    samples += [_ask("two_images", ("image", zoo["jpeg_turned"]), ("image", zoo["png"])),  # never tiled
                _ask("everything", ("image", zoo["jpeg_large"]), ("audio", zoo["m4a"]), ("video", zoo["mp4"])),
                Sample("text", [Turn("user", "Hi"), Turn("assistant", "Hello.")])]
    return samples


def _outcome(fn):
    try:
        return fn()
    except (MediaError, SampleError) as err:
        return type(err)


def _shapes(tensors) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tensors]


def test_measured_examples_equal_decoded_ones_on_every_modality(processor, zoo):
    checked = 0
    for sample in _samples(zoo):
        decoded, measured = _outcome(lambda: processor(sample)), _outcome(lambda: processor.measure(sample))
        if isinstance(decoded, type):
            assert measured is decoded, sample.id  # the same error (a clip too short, a modality the model lacks)
            continue
        example, fallbacks = measured
        assert torch.equal(example.input_ids, decoded.input_ids) and torch.equal(example.labels, decoded.labels), sample.id
        assert _shapes(example.pixel_values) == _shapes(decoded.pixel_values), sample.id
        assert _shapes(example.video_pixels) == _shapes(decoded.video_pixels), sample.id
        assert _shapes(example.audio_features) == _shapes(decoded.audio_features), sample.id
        assert cost_of(example) == cost_of(decoded), sample.id
        # The WebM clip's Opus track is decoded only when the model hears it.
        expected = NEEDS_DECODE.get(sample.id, 0) if sample.id != "webm" or processor.video_audio else 0
        assert fallbacks == expected, sample.id
        checked += 1
    assert checked >= len(IMAGES) + 4  # every image, and the videos at least, took the comparison


def test_over_long_samples_get_the_same_verdict(zoo):
    processor = build_processor(tiny_omni())
    processor.max_len = 40  # the video's run alone is longer: it cannot be cut
    video, text = _ask("v", ("video", zoo["mp4"])), Sample("t", [Turn("user", "Hi"), Turn("assistant", "y " * 60)])
    assert _outcome(lambda: processor(video)) is SampleError is _outcome(lambda: processor.measure(video))
    assert torch.equal(processor.measure(text)[0].input_ids, processor(text).input_ids)  # truncated the same way


def test_the_probes_read_headers_only(zoo):
    assert image_size(zoo["jpeg_turned"]) == (64, 96)  # stored 96 x 64, EXIF orientation 6
    assert image_size(zoo["png_late_exif"]) is None  # its orientation lies behind the pixels
    assert audio_length(zoo["m4a"]) == (105472, 44100)  # 104 AAC frames of 1024, less 1024 priming samples
    assert audio_length(zoo["webm_opus"]) is None
    turned = probe_video(zoo["mp4_turned"])
    assert (turned.frames, turned.fps, turned.height, turned.width) == (12, 10.0, 64, 48)
    assert resampled_length(105472, 44100, 16000) == 38267  # ceil(105472 * 160 / 441)


def test_the_dataset_measures_with_the_same_skips(zoo, media):
    processor = build_processor(tiny_omni())
    samples = [_ask("ok", ("image", zoo["png"])), _ask("corrupt", ("image", media["corrupt"])),
               _ask("late", ("image", zoo["png_late_exif"]))]
    dataset = SampleDataset(samples, processor)
    with pytest.warns(UserWarning, match="skipping sample 'corrupt'"):
        measured = [dataset.measure(i) for i in range(3)]
    assert measured[1] == (None, 0) and measured[2][1] == 1
    assert cost_of(measured[0][0]) == cost_of(dataset[0])


def test_the_offline_pass_measures_in_parallel_from_metadata_with_the_decoded_costs(zoo):
    processor = build_processor(tiny_omni(), max_tiles=9, video=VideoSpec(num_frames=4))
    dataset = SampleDataset(_samples(zoo) * 3, processor)  # several chunks of work
    budget, ids, rate = PackBudget(4096), sorted(processor.token_ids.values()), 100.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clip too short for a mel frame, skipped both ways
        decoded, decoded_stats = measure(dataset, budget, ids, rate, num_workers=0, metadata=False)
        costs, stats = measure(dataset, budget, ids, rate, num_workers=2, metadata=True)
    assert costs == decoded and None in costs
    assert stats.decoded == 3 * 3 and decoded_stats.decoded == 0  # late eXIf, Opus file, WebM's Opus track
    assert (stats.unreadable, stats.skipped) == (decoded_stats.unreadable, decoded_stats.skipped)


def _copy_data(media, root: Path) -> Path:
    (root / "media").mkdir(parents=True)
    for name in ("red", "tone"):
        shutil.copy2(media[name], root / "media" / Path(media[name]).name)
    records = [{"id": f"s{i}", "messages": [{"role": "user", "content": f"<image><audio>Item {i}?"},
                                            {"role": "assistant", "content": "A red box."}],
                "images": ["media/red.png"], "audios": ["media/tone.wav"]} for i in range(6)]
    (root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_the_pack_index_is_found_again_from_another_working_folder(stage, media, tmp_path, monkeypatch):
    cache = tmp_path / "packs"

    def build(folder: Path, train: str) -> list[Path]:
        monkeypatch.chdir(folder)
        dm = OmniDataModule(train=train, packing={"max_tokens": 256, "cache_dir": str(cache)})
        dm.connect(stage.processor)
        dm.train_dataloader()
        return sorted(cache.glob("packs-*.json"))

    _copy_data(media, tmp_path / "a" / "data")
    (index,) = build(tmp_path / "a", "data/d.jsonl")
    stamp = index.stat().st_mtime_ns
    shutil.copytree(tmp_path / "a" / "data", tmp_path / "b" / "deeper" / "data")  # copy2: times kept
    assert build(tmp_path / "b", "deeper/data/d.jsonl") == [index] and index.stat().st_mtime_ns == stamp
    Image.new("RGB", (64, 64)).save(tmp_path / "b" / "deeper" / "data" / "media" / "red.png")  # changed data
    assert len(build(tmp_path / "b", "deeper/data/d.jsonl")) == 2
