"""Stand-ins for the Valley3 release's loading code, written here from its documented conventions (not its code).

- `ReleaseLikeProcessor`: built the way `ValleyOmniProcessor.from_pretrained` builds itself (AutoImageProcessor,
  AutoVideoProcessor, WhisperFeatureExtractor and AutoTokenizer from one folder; the seven named tokenizer
  attributes), and processing as it documents: each <|image_pad|> / <|audio_pad|> / <|video_pad|> of the rendered
  chat expands to one token per merged grid cell or AuT token; with `use_audio_in_video` a video's
  <|vision_start|><|video_pad|><|vision_end|> becomes <|vision_start|><|audio_start|> grids and audio tokens merged
  by temporal id (grid k at k * second_per_grid * position_id_per_seconds, audio token j at j, the grid first on
  ties) <|audio_end|><|vision_end|>, consuming the next audio. Call defaults come from the tokenizer's init kwargs
  (Qwen3-Omni's processor defaults otherwise: 13 ids/s, 1 fps, no interleaving).
- `ListTiedQwen3VL`: Qwen3-VL declaring `_tied_weights_keys` as a list, as `ValleyOmniForConditionalGeneration` does.
- `qwen3_vl_like_tokenizer`: a byte-level tokenizer with Qwen3-VL's added-token layout (ids 151643-151668).
"""

from __future__ import annotations

import re

import torch
from transformers import Qwen3VLForConditionalGeneration
from transformers.processing_utils import ProcessorMixin

TOKEN_NAMES = ("image_token", "video_token", "audio_token", "vision_bos_token", "vision_eos_token",
               "audio_bos_token", "audio_eos_token")
OMNI_DEFAULTS = {"position_id_per_seconds": 13.0, "fps": 1.0, "use_audio_in_video": False}
# Qwen3-VL's added tokens, in id order from 151643 (its tokenizer has 151669 tokens).
QWEN3_VL_ADDED = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
    "</think>",
)
QWEN3_VL_BASE = 151643


def aut_tokens(frames: int) -> int:
    """AuT tokens of `frames` mel frames: 13 per full 100, the 8x conv downsampling of the rest."""
    rest = frames % 100
    for _ in range(3):
        rest = (rest - 1) // 2 + 1 if rest else 0
    return rest + frames // 100 * 13


class ReleaseLikeProcessor(ProcessorMixin):
    """The release processor's conventions (see the module docstring)."""

    feature_extractor_class = "WhisperFeatureExtractor"

    def __init__(self, image_processor=None, video_processor=None, feature_extractor=None, tokenizer=None,
                 chat_template=None):
        super().__init__(image_processor, video_processor, feature_extractor, tokenizer, chat_template=chat_template)
        for name in TOKEN_NAMES:  # an AttributeError here is the release's failure on a folder without them
            setattr(self, name, getattr(self.tokenizer, name))

    def __call__(self, text: str, images=None, videos=None, audio=None, **overrides):
        options = {k: self.tokenizer.init_kwargs.get(k, v) for k, v in OMNI_DEFAULTS.items()} | overrides
        size = self.tokenizer.init_kwargs.get("size")
        out, lengths, grids = {}, [], {"image": [], "video": []}
        if audio is not None:
            mel = self.feature_extractor(audio, sampling_rate=16000, padding=True, truncation=False,
                                         return_attention_mask=True, return_tensors="pt")
            out["input_features"], out["feature_attention_mask"] = mel["input_features"], mel["attention_mask"]
            lengths = [aut_tokens(int(n)) for n in mel["attention_mask"].sum(-1)]
        if images is not None:
            out.update(self.image_processor(images=images, size=size, return_tensors="pt"))
            grids["image"] = out["image_grid_thw"].tolist()
        if videos is not None:
            out.update(self.video_processor(videos=videos, size=size, return_tensors="pt"))
            grids["video"] = out["video_grid_thw"].tolist()
            out["video_second_per_grid"] = torch.full((len(videos),), self.video_processor.temporal_patch_size
                                                      / options["fps"])
        expanded = self._expand(text, iter(lengths), {k: iter(v) for k, v in grids.items()}, options)
        out["input_ids"] = torch.tensor([self.tokenizer(expanded, add_special_tokens=False)["input_ids"]])
        return out

    def _expand(self, text: str, lengths, grids, options) -> str:
        merge = self.image_processor.merge_size**2
        video_block = self.vision_bos_token + self.video_token + self.vision_eos_token
        wanted = [video_block] if options["use_audio_in_video"] else []
        pattern = "|".join(re.escape(t) for t in [*wanted, self.image_token, self.video_token, self.audio_token])

        def one(match: re.Match) -> str:
            token = match.group()
            if token == self.audio_token:
                return self.audio_token * next(lengths)
            if token != video_block:
                t, h, w = next(grids["image" if token == self.image_token else "video"])
                return token * (t * h * w // merge)
            t, h, w = next(grids["video"])
            per_grid = h * w // merge
            step = self.video_processor.temporal_patch_size / options["fps"] * options["position_id_per_seconds"]
            keys = [(k * step, 0) for k in range(t) for _ in range(per_grid)]
            keys += [(float(j), 1) for j in range(next(lengths))]
            merged = "".join(self.video_token if kind == 0 else self.audio_token for _, kind in sorted(keys))
            return self.vision_bos_token + self.audio_bos_token + merged + self.audio_eos_token + self.vision_eos_token

        return re.sub(pattern, one, text)


class ListTiedQwen3VL(Qwen3VLForConditionalGeneration):
    """Qwen3-VL whose tied keys are a list, as the release declares them (transformers 5 expects a dict)."""

    _tied_weights_keys = ["lm_head.weight"]


def qwen3_vl_like_tokenizer(out_dir) -> None:
    """Save a byte-level BPE with Qwen3-VL's layout: 151643 ordinary tokens, then its 26 added tokens in order."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    vocab.update({f"\u0120w{i}": i for i in range(len(vocab), QWEN3_VL_BASE)})  # fillers up to Qwen's base size
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, special=True) for t in QWEN3_VL_ADDED])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    assert len(tokenizer) == QWEN3_VL_BASE + len(QWEN3_VL_ADDED) == 151669
    tokenizer.save_pretrained(str(out_dir))
