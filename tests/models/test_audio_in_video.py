"""Audio-in-video (use_audio_in_video=True): processor layout, TM-RoPE ids against transformers' Qwen3-Omni, packing
mixed layouts, training."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch

from valley3.data.collate import PadCollator
from valley3.data.packing import PackingCollator
from valley3.data.processor import VideoSpec
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.models import OmniModel
from valley3.models.audio import AuTEncoder
from valley3.models.decoders import Qwen3VLDecoder
from valley3.stages import OmniStage
from valley3.stages.base import build_processor

FPS = 2  # frames sampled per second: temporal grids (2 frames) 1 s apart, 25 TM-RoPE ids apart
SOUNDS = {"short": (3.0, 0.6), "even": (2.0, 2.0), "long": (1.0, 3.4)}  # name: (video seconds, audio seconds)
def write_video(path, seconds: float, sound_seconds: float | None, fps: int = 10) -> str:
    """An mp4 of changing grey frames at `fps`, with a 16 kHz sine track of `sound_seconds` (None: silent)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        sound = container.add_stream("aac", rate=16000, layout="mono") if sound_seconds else None
        for i in range(round(seconds * fps)):
            frame = np.full((64, 64, 3), (7 * i) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
        if sound is not None:
            wave = (0.3 * np.sin(2 * np.pi * 330 * np.arange(int(sound_seconds * 16000)) / 16000)).astype(np.float32)
            step = sound.codec_context.frame_size or 1024
            for start in range(0, wave.size, step):
                frame = av.AudioFrame.from_ndarray(wave[None, start : start + step].copy(), "fltp", "mono")
                frame.sample_rate, frame.pts = 16000, start
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("av")
    return {name: write_video(root / f"{name}.mp4", *lengths) for name, lengths in SOUNDS.items()}


@pytest.fixture(scope="module")
def model() -> OmniModel:
    torch.manual_seed(0)
    return OmniModel(Qwen3VLDecoder("tiny-qwen3-vl", min_pixels=32 * 32 * 4), audio=AuTEncoder("tiny-aut")).eval()


def _ask(name: str, video: str, extra: list[MediaRef] = ()) -> Sample:
    tags = "".join(f"<{ref.kind}>" for ref in extra)
    return Sample(name, [Turn("user", f"<video>{tags}What happens?"), Turn("assistant", "It gets brighter.")],
                  [MediaRef("video", video), *extra])


def _processor(model, interleave: bool):
    return build_processor(model, video=VideoSpec(fps=FPS, audio_in_video=interleave))


def _qwen3_omni_rope_index(model, example, fps=FPS):
    """transformers' Qwen3-Omni get_rope_index (use_audio_in_video=True) on the example's tokens."""
    from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (
        Qwen3OmniMoePreTrainedModelForConditionalGeneration as Omni,
    )

    tok, ids = model.token_ids, example.input_ids[None]
    config = SimpleNamespace(
        image_token_id=tok["image"], video_token_id=tok["video"], audio_token_id=tok["audio"],
        vision_start_token_id=_id(model, "<|vision_start|>"), audio_start_token_id=_id(model, "<|audio_start|>"),
        position_id_per_seconds=25, audio_config=SimpleNamespace(n_window=50),
    )  # fmt: skip
    fake = SimpleNamespace(config=config, spatial_merge_size=2)
    fake.get_llm_pos_ids_for_vision = partial(Omni.get_llm_pos_ids_for_vision, fake)
    grids = torch.tensor([model.decoder.patchify(v)[1] for v in example.video_pixels])
    seqlens = torch.tensor([mel.shape[-1] for mel in example.audio_features])
    second_per_grids = torch.full((len(grids),), model.decoder.temporal_patch_size / fps)
    return Omni.get_rope_index(fake, ids, video_grid_thw=grids, attention_mask=torch.ones_like(ids),
                               use_audio_in_video=True, audio_seqlens=seqlens, second_per_grids=second_per_grids)


def _id(model, token: str) -> int:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model.decoder.tokenizer_path).convert_tokens_to_ids(token)


def _ours(model, example):
    batch = PadCollator(0)([example])
    grids = {"video": torch.tensor([model.decoder.patchify(v)[1] for v in example.video_pixels])}
    return model.decoder.rope_ids(batch.input_ids, model.token_ids, grids, batch.media.video_timestamps,
                                  batch.media.video_frames)


@pytest.mark.parametrize("name", list(SOUNDS))
def test_position_ids_equal_transformers_qwen3_omni_on_videos_with_sound(model, videos, name):
    processor = _processor(model, interleave=True)
    example = processor(_ask(name, videos[name]))
    ids, tok = example.input_ids.tolist(), processor.tokenizer.convert_tokens_to_ids
    start = ids.index(tok("<|vision_start|>"))
    assert ids[start + 1] == tok("<|audio_start|>")  # the release's 2-token brackets around one block
    end = ids.index(tok("<|vision_end|>"))
    assert ids[end - 1] == tok("<|audio_end|>") and tok("<|audio_start|>") not in ids[end:]
    block = ids[start + 2 : end - 1]
    video, audio = block.count(model.token_ids["video"]), block.count(model.token_ids["audio"])
    assert audio == model.audio_num_tokens(example.audio_features[0].shape[-1]) and video + audio == len(block)
    assert block[0] == model.token_ids["video"]  # a grid wins the tie at time 0
    ref, delta = _qwen3_omni_rope_index(model, example)
    ours, nxt = _ours(model, example)
    assert torch.equal(ref.long(), ours) and int(nxt[0]) - len(ids) == int(delta[0])


def test_a_packed_batch_mixing_both_layouts_equals_each_sample_alone(model, videos, media):
    interleaved, separate = _processor(model, interleave=True), _processor(model, interleave=False)
    items = [interleaved(_ask("a", videos["long"], [MediaRef("audio", media["tone"])])),
             separate(_ask("b", videos["short"])),
             interleaved(_ask("c", videos["even"], [MediaRef("image", media["red"])]))]
    vs_as = [interleaved.tokenizer.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|audio_start|>")]
    pairs = [list(zip(x.input_ids.tolist(), x.input_ids.tolist()[1:])) for x in items]
    assert [tuple(vs_as) in p for p in pairs] == [True, False, True]
    with torch.no_grad():
        packed = PackingCollator(interleaved.pad_id)([items])
        logits = model(packed.input_ids, packed.attention_mask, cu_seqlens=packed.cu_seqlens,
                       media=packed.media).flatten(0, 1)
        start = 0
        for example in items:
            single = PadCollator(interleaved.pad_id)([example])
            alone = model(single.input_ids, single.attention_mask, media=single.media)[0]
            assert (logits[start : start + len(example)] - alone).abs().max() <= 1e-5
            start += len(example)


def test_interleaved_samples_train(model, videos):
    stage = OmniStage(model, video={"fps": FPS, "audio_in_video": True})
    batch = PadCollator(stage.processor.pad_id)([stage.processor(_ask(n, videos[n])) for n in ("short", "long")])
    stage.train()
    loss, count = stage.model_step(batch)
    loss.backward()
    assert torch.isfinite(loss) and int(count) > 0
    assert model.audio_connector.net[0].weight.grad.abs().sum() > 0  # the video's audio reached the loss
    model.zero_grad(set_to_none=True)
    model.eval()


def test_a_processor_on_another_time_scale_is_a_clear_error(model, videos):
    other = build_processor(model, video=VideoSpec(fps=FPS, audio_in_video=True, ids_per_second=13))
    batch = PadCollator(other.pad_id)([other(_ask("even", videos["even"]))])  # 2 grids: 13 vs 25 ids apart
    with pytest.raises(ValueError, match="not in time order at 25"):
        model(batch.input_ids, batch.attention_mask, media=batch.media)
