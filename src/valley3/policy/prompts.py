"""The processor a model needs, and prompts (Samples or messages records) -> the examples generation feeds."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer

from valley3.data.formats import parse_record
from valley3.data.processor import IGNORE_INDEX, AudioSpec, Example, ImageSpec, OmniProcessor, VideoSpec
from valley3.data.schema import Sample
from valley3.data.templates import ChatTemplate, SpecialTokens
from valley3.models.omni import OmniModel
from valley3.models.weights import local_folder

Prompt = Sample | dict[str, Any]


def build_processor(
    model: OmniModel,
    system_prompt: str = "You are a helpful assistant.",
    max_tiles: int = 1,
    video: VideoSpec | None = None,
) -> OmniProcessor:
    """The processor for `model`: its tokenizer, its placeholder tokens and its own size and token-count functions.

    Args:
        model: the network whose encoders decide sizes and token counts.
        system_prompt: system turn used when a sample has none.
        max_tiles: a sample's single image is cut into up to this many tiles (plus a thumbnail); 1 = no tiling.
        video: how videos are sampled (default `VideoSpec()`).
    """
    tokenizer = AutoTokenizer.from_pretrained(local_folder(model.decoder.tokenizer_path), local_files_only=True)
    tokens = SpecialTokens(**{kind: tok for kind, tok in model.media_tokens.items()})
    image = audio = None
    if model.vision is not None:
        v = model.vision
        image = ImageSpec(v.image_size, v.image_mean, v.image_std, model.image_num_tokens, max_tiles, v.input_size)
    elif model.decoder.owns_vision:  # Qwen3-VL: native resolution (no square size), frames in temporal pairs, no tiles
        d = model.decoder
        image = ImageSpec(0, d.image_mean, d.image_std, model.image_num_tokens, 1, d.input_size,
                          d.temporal_patch_size)
    if model.audio is not None:
        a = model.audio
        audio = AudioSpec(a.sampling_rate, a.n_mels, a.n_fft, a.hop_length, model.audio_num_tokens)
    template = ChatTemplate(tokens, system_prompt)
    video = video or VideoSpec()
    if video.ids_per_second is None:  # a video's audio interleaves on the model's time scale
        video = replace(video, ids_per_second=getattr(model.decoder, "position_id_per_seconds", 25))
    processor = OmniProcessor(tokenizer, template, image=image, audio=audio, video=video)
    model.bind_tokenizer(processor.token_ids, len(tokenizer))
    return processor


def as_sample(prompt: Prompt, index: int = 0) -> Sample:
    """A Sample, or a messages-format record ("messages", optional "images"/"audios"/"videos"; relative media paths
    resolve against the working directory) read into one; errors name it as "<prompt INDEX>"."""
    if isinstance(prompt, Sample):
        return prompt
    if not isinstance(prompt, dict):
        raise TypeError(f"prompt {index}: expected a Sample or a messages record (dict), got {type(prompt).__name__}")
    record = dict(prompt)
    messages = list(record.get("messages") or [])
    answered = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant"
    if not answered:  # the schema wants an answer turn: validate with an empty one, then drop it
        record["messages"] = [*messages, {"role": "assistant", "content": ""}]
    sample = parse_record(record, f"<prompt {index}>", Path.cwd(), "messages")
    if not answered:
        sample.turns = sample.turns[:-1]
    return sample


def prompt_example(processor: OmniProcessor, prompt: Prompt, index: int = 0, prefix: str | None = None) -> Example:
    """The generation example of a prompt (a trailing assistant turn dropped), `prefix`'s ids appended unlabelled:
    the assistant text already written, which generation continues."""
    example = processor(as_sample(prompt, index), generation=True)
    if not prefix:
        return example
    ids = processor.tokenizer(prefix, add_special_tokens=False)["input_ids"]
    ids = torch.cat([example.input_ids, torch.tensor(ids, dtype=torch.long)])
    return dataclasses.replace(example, input_ids=ids, labels=torch.full_like(ids, IGNORE_INDEX))


def with_completion(prompt: Example, completion: list[int], loss_mask: list[int] | None, index: int) -> Example:
    """`prompt` followed by `completion`, labelled where `loss_mask` is 1 (all of it by default); media shared."""
    if loss_mask is not None and len(loss_mask) != len(completion):
        raise ValueError(f"completion {index}: {len(completion)} tokens but a loss mask of {len(loss_mask)}")
    ids = torch.tensor(completion, dtype=torch.long)
    labels = ids if loss_mask is None else ids.masked_fill(torch.tensor(loss_mask) == 0, IGNORE_INDEX)
    return dataclasses.replace(
        prompt, input_ids=torch.cat([prompt.input_ids, ids]), sample_id=f"{prompt.sample_id}#{index}",
        labels=torch.cat([torch.full_like(prompt.input_ids, IGNORE_INDEX), labels]),
        prompt=None, reference=None,  # a scored sequence, not a generation prompt: no texts ride along
    )
