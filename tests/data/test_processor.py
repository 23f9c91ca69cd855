"""OmniProcessor: exact labels, exact placeholder runs, clear errors."""

from __future__ import annotations

import pytest
import torch

from valley3.data.processor import IGNORE_INDEX, OmniProcessor, SampleError
from valley3.data.schema import MediaRef, Sample, Turn


@pytest.fixture
def processor(stage) -> OmniProcessor:
    return stage.processor


def _ids(processor: OmniProcessor, text: str) -> list[int]:
    return processor.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_only_assistant_tokens_carry_labels_on_a_three_turn_sample(processor):
    turns = [
        Turn("user", "What colour is it?"), Turn("assistant", "Red."),
        Turn("user", "And the brand?"), Turn("assistant", "Velmo."),
        Turn("user", "Price?"), Turn("assistant", "12.50 dollars."),
    ]
    ex = processor(Sample("s", turns))
    end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    supervised = ex.labels[ex.labels != IGNORE_INDEX].tolist()
    expected = []
    for answer in ("Red.", "Velmo.", "12.50 dollars."):
        expected += _ids(processor, answer) + [end]
    assert supervised == expected
    # Labelled positions hold exactly the input tokens there; everything else (system, user, headers) is masked.
    trained = ex.labels != IGNORE_INDEX
    assert torch.equal(ex.labels[trained], ex.input_ids[trained])
    assert processor.tokenizer.decode(ex.input_ids).startswith("<|im_start|>system\nYou are a helpful assistant.")


def test_media_tags_expand_to_bracketed_placeholder_runs(processor, media):
    sample = Sample(
        "m", [Turn("user", "<image> and <audio>?"), Turn("assistant", "Yes.")],
        [MediaRef("image", media["red"]), MediaRef("audio", media["tone"])],
    )
    ex = processor(sample)
    ids = ex.input_ids.tolist()
    tok = processor.tokenizer.convert_tokens_to_ids
    image_at = ids.index(tok("<|vision_start|>"))
    assert ids[image_at + 1 : image_at + 17] == [processor.token_ids["image"]] * 16
    assert ids[image_at + 17] == tok("<|vision_end|>")
    audio_at = ids.index(tok("<|audio_start|>"))
    n_audio = processor.audio.num_tokens(ex.audio_features[0].shape[-1])
    assert n_audio == 32  # 1.3 s -> 130 frames -> 65 encoder frames -> 32 pooled
    assert ids[audio_at + 1 : audio_at + 1 + n_audio] == [processor.token_ids["audio"]] * n_audio
    assert ids[audio_at + 1 + n_audio] == tok("<|audio_end|>")
    assert (ex.labels[: audio_at + n_audio + 2] == IGNORE_INDEX).all()
    assert ex.pixel_values[0].shape == (3, 32, 32)


def test_generation_holds_out_the_last_answer(processor):
    ex = processor(Sample("g", [Turn("user", "Hi"), Turn("assistant", "Hello.")]), generation=True)
    assert ex.reference == "Hello."
    assert processor.tokenizer.decode(ex.input_ids).endswith("<|im_start|>assistant\n")
    assert (ex.labels == IGNORE_INDEX).all()


def test_reserved_placeholder_text_is_rejected_naming_the_sample(processor):
    sample = Sample("bad", [Turn("user", "<|image_pad|> hi"), Turn("assistant", "x")], source="d.jsonl:7")
    with pytest.raises(SampleError, match="d.jsonl:7.*'bad'.*reserved"):
        processor(sample)


def test_too_long_examples_truncate_text_but_never_cut_media(processor, media):
    processor.max_len = 40
    long_answer = Sample("t", [Turn("user", "hi"), Turn("assistant", "ok " * 50)])
    truncated = processor(long_answer)
    assert len(truncated) == 40 and (truncated.labels != IGNORE_INDEX).any()
    late_image = Sample(
        "i", [Turn("user", "hi " * 30 + "<image>"), Turn("assistant", "ok")], [MediaRef("image", media["red"])]
    )
    with pytest.raises(SampleError, match="would cut a media item"):
        processor(late_image)


def test_model_without_audio_rejects_audio_samples(media):
    from valley3.models import OmniModel
    from valley3.models.decoders import HFDecoder
    from valley3.models.vision import SigLIPEncoder
    from valley3.stages import OmniStage

    stage = OmniStage(OmniModel(HFDecoder("tiny-qwen3"), vision=SigLIPEncoder("tiny-siglip")))
    sample = Sample("a", [Turn("user", "<audio>"), Turn("assistant", "x")], [MediaRef("audio", media["tone"])])
    with pytest.raises(SampleError, match="takes no audio"):
        stage.processor(sample)


def test_prompts_are_never_truncated_and_answers_never_cut_away(processor):
    processor.max_len = 30
    sample = Sample("p", [Turn("user", "x " * 40), Turn("assistant", "ok")], source="q.jsonl:3")
    with pytest.raises(SampleError, match="q.jsonl:3.*a prompt is never truncated"):
        processor(sample, generation=True)
    with pytest.raises(SampleError, match="no supervised token"):
        processor(sample)


def test_a_clip_too_short_for_one_audio_token_is_a_media_error(processor, tmp_path):
    import numpy as np
    import soundfile as sf

    from valley3.data.media import MediaError

    sf.write(tmp_path / "blip.wav", np.zeros(300), 16000)  # 1 mel frame -> 0 Whisper tokens
    sample = Sample("a", [Turn("user", "<audio>"), Turn("assistant", "x")], [MediaRef("audio", str(tmp_path / "blip.wav"))])
    with pytest.raises(MediaError, match="blip.wav.*too short"):
        processor(sample)
