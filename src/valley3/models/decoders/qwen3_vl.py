"""Qwen3-VL as Valley3's backbone: its ViT, merger and DeepStack run inside the decoder, positions are TM-RoPE."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from transformers import DynamicCache, Qwen3VLConfig, Qwen3VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from valley3.assets import tiny_tokenizer_dir
from valley3.data.batch import Pictures
from valley3.compat import build_from_config
from valley3.models.attention import SDPA_VARLEN, packed_inputs, register_backends, resolve_backend
from valley3.models.decoders.base import Decoder
from valley3.models.decoding import DecodeState
from valley3.models.positions import (
    AUDIO_IN_VIDEO, Audio, Image, Text, Video, audio_in_video_order, placeholder_runs, tm_rope_ids,
)
from valley3.models.presets import DECODERS, resolve
from valley3.models.init_args import records_init_args
from valley3.models.weights import load_pretrained


@records_init_args
class Qwen3VLDecoder(Decoder):

    """The whole Qwen3-VL model (vision tower + merger + DeepStack + decoder): the decoder-owns-vision architecture
    (see `Decoder`), fed by OmniModel with embeddings (audio scattered in), the tokens and the pictures.

    Pictures arrive as [3, H, W] tensors already resized by `input_size` (smart resize to multiples of
    patch x merge) and normalised with mean = std = 0.5; the decoder cuts them into Qwen's patch rows itself.
    Position ids are the Valley3 release's TM-RoPE (`positions.tm_rope_ids`), computed per sample from its tokens.

    Args:
        preset: a named shape from `valley3.models.presets.DECODERS` (e.g. "tiny-qwen3-vl").
        config: Qwen3VLConfig keywords applied on top of the preset.
        path: a local Qwen3-VL (or valley_omni-exported) checkpoint folder; wins over preset/config.
        tokenizer: the tokenizer folder; defaults to `path`, else the project's tiny tokenizer.
        attn_implementation: the decoder's attention backend, as for `HFDecoder` (the ViT uses SDPA or flash-attn).
        dtype: parameter dtype, e.g. "float32" or "bfloat16".
        min_pixels: smallest picture area after resize (Qwen3-VL's processor: 65536).
        max_pixels: largest picture area after resize (Qwen3-VL's processor: 16777216).
        position_id_per_seconds: TM-RoPE temporal ids per second of video (the release's 25).
    """

    owns_vision = True

    def __init__(
        self,
        preset: str | None = None,
        config: dict[str, Any] | None = None,
        path: str | None = None,
        tokenizer: str | None = None,
        attn_implementation: str = "sdpa",
        dtype: str = "float32",
        min_pixels: int = 65536,
        max_pixels: int = 16777216,
        position_id_per_seconds: float = 25,
    ):
        super().__init__()
        register_backends()
        backend = resolve_backend(attn_implementation)
        # The ViT runs its own per-image varlen attention; valley3's packed-LM backend is for the text model only.
        attn = {"text_config": backend, "vision_config": "sdpa" if backend == SDPA_VARLEN else backend, "": backend}
        if path is not None:
            self.model = load_pretrained(Qwen3VLForConditionalGeneration, path, attn_implementation=attn,
                                         dtype=getattr(torch, dtype))
        else:
            kwargs = resolve(DECODERS, preset, config)
            if kwargs.pop("model_type", "qwen3_vl") != "qwen3_vl":
                raise ValueError(f"Qwen3VLDecoder needs a qwen3_vl preset, got {preset!r}")
            self.model = build_from_config(
                Qwen3VLForConditionalGeneration, Qwen3VLConfig(**kwargs), attn_implementation=attn,
                dtype=getattr(torch, dtype),
            )
        self.tokenizer_path = tokenizer or path or tiny_tokenizer_dir()
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.position_id_per_seconds = position_id_per_seconds
        vision = self.model.config.vision_config
        self.patch_size, self.merge, self.temporal_patch_size = (
            vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size
        )
        # What the processor reads (ImageSpec) besides `input_size` and `image_num_tokens`.
        self.image_mean = self.image_std = (0.5, 0.5, 0.5)

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.model.config.text_config.hidden_size

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Qwen3-VL's smart resize: both sides multiples of patch x merge, area within [min_pixels, max_pixels]."""
        return smart_resize(height, width, self.patch_size * self.merge, self.min_pixels, self.max_pixels)

    def image_num_tokens(self, height: int, width: int) -> int:
        """LLM tokens of one picture of this (already resized) size."""
        side = self.patch_size * self.merge
        if height % side or width % side:
            raise ValueError(f"a {height}x{width} picture is not a multiple of {side}; resize it with input_size")
        return (height // side) * (width // side)

    def components(self) -> dict[str, nn.Module]:
        """The ViT with its mergers ("vision"), and the language model with its head ("decoder")."""
        inner = self.model.model
        language = nn.ModuleDict({"lm": inner.language_model, "head": self.model.lm_head})
        return {"vision": inner.visual, "decoder": language}

    # -- vision ---------------------------------------------------------------------------------
    def patchify(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """[T, 3, H, W] frames (a picture: T = 1) -> Qwen's patch rows [t*h*w, 3*tp*p*p] and the grid [t, h, w].

        T is padded to a multiple of the temporal patch by repeating the last frame, as Qwen's processors do;
        rows follow the merge windows (2x2 neighbours adjacent), the order the merger expects."""
        tp, p, m = self.temporal_patch_size, self.patch_size, self.merge
        if frames.shape[0] % tp:
            frames = torch.cat([frames, frames[-1:].expand(tp - frames.shape[0] % tp, -1, -1, -1)])
        t, c, height, width = frames.shape
        gt, gh, gw = t // tp, height // p, width // p
        x = frames.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
        return x.reshape(gt * gh * gw, c * tp * p * p), [gt, gh, gw]

    def encode_pictures(self, clips: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """Merged features [tokens, width], DeepStack features per level and the grids [N, 3] of some clips."""
        rows, grids = zip(*(self.patchify(clip) for clip in clips))
        grid = torch.tensor(grids, dtype=torch.long, device=rows[0].device)
        visual = self.model.model.visual
        out = visual(torch.cat(rows).to(visual.dtype), grid_thw=grid, return_dict=True)
        return out.pooler_output, list(out.deepstack_features), grid

    def _encode_by_kind(self, pixel_values, video_pixels, video_frames) -> Iterator[tuple[str, tuple]]:
        """(kind, (features, DeepStack levels, grids)) for images, then videos, from ONE pass of the ViT: under
        FSDP every rank must call a sharded tower equally often, whatever mix of images and videos it holds."""
        images, videos = _images(pixel_values), _videos(video_pixels, video_frames)
        if not images and not videos:
            return
        features, levels, grid = self.encode_pictures(images + videos)
        split = int(grid[: len(images)].prod(-1).sum()) // self.merge**2  # image tokens come first
        if images:
            yield "image", (features[:split], [level[:split] for level in levels], grid[: len(images)])
        if videos:
            yield "video", (features[split:], [level[split:] for level in levels], grid[len(images) :])

    def add_vision(self, embeds, input_ids, token_ids, pixel_values=None, video_pixels=None, video_frames=None,
                   dummy_inputs=False):
        """Scatter image and video features into `embeds`; returns (embeds, visual mask, DeepStack list, grids).

        `dummy_inputs` (OmniModel's, in training): when the batch has no picture, run a trainable ViT on one zero
        picture and add 0 x its output, so every rank runs the same modules and every parameter gets a (zero)
        gradient (DDP, FSDP)."""
        visual_mask = torch.zeros_like(input_ids, dtype=torch.bool)
        deepstack: list[torch.Tensor] | None = None
        grids: dict[str, torch.Tensor] = {}
        for kind, (features, levels, grid) in self._encode_by_kind(pixel_values, video_pixels, video_frames):
            grids[kind] = grid
            mask = input_ids == token_ids[kind]
            if int(mask.sum()) != features.shape[0]:
                raise ValueError(f"{int(mask.sum())} {kind} placeholders for {features.shape[0]} {kind} features")
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))
            # DeepStack adds each level at the visual tokens in sequence order, images and videos interleaved.
            joint = mask[visual_mask | mask]
            if deepstack is None:
                deepstack = [level.new_zeros(int(joint.sum()), level.shape[-1]) for level in levels]
            else:
                deepstack = [_widen(d, ~joint) for d in deepstack]
            for d, level in zip(deepstack, levels):
                d[joint] = level.to(d.dtype)
            visual_mask |= mask
        visual = self.model.model.visual
        if dummy_inputs and not grids and any(p.requires_grad for p in visual.parameters()):
            side = self.patch_size * self.merge
            features, levels, _ = self.encode_pictures([embeds.new_zeros(1, 3, side, side)])
            embeds = embeds + 0 * (features.sum() + sum(level.sum() for level in levels)).to(embeds.dtype)
        return embeds, (visual_mask if deepstack else None), deepstack, grids

    # -- positions ------------------------------------------------------------------------------
    def rope_ids(self, input_ids, token_ids, grids, video_timestamps=None, video_frames=None,
                 attention_mask=None, cu_seqlens=None) -> tuple[torch.Tensor, torch.Tensor]:
        """TM-RoPE ids [3, B, L] (each sample from 0; pads 0) and each row's next free id [B] (its last sample's)."""
        kinds = {token_ids[k]: k for k in ("image", "video", "audio")}
        videos = _video_segments(grids, video_timestamps, video_frames, self.merge, self.temporal_patch_size)
        items = {"image": iter(grids.get("image", [])), "video": iter(videos)}
        out = torch.zeros(3, *input_ids.shape, dtype=torch.long)
        nxt = torch.zeros(input_ids.shape[0], dtype=torch.long)
        for row, span in _samples(input_ids, attention_mask, cu_seqlens):
            tokens, segments, at = input_ids[row, span], [], 0
            for kind, n in placeholder_runs(tokens.tolist(), kinds):
                segments.append(_segment(kind, n, items, self.merge))
                if kind == AUDIO_IN_VIDEO:  # the video's own audio, interleaved by time (use_audio_in_video)
                    _check_order(segments[-1], tokens[at : at + n] == token_ids["video"], self.position_id_per_seconds)
                at += n
            ids, nxt[row] = tm_rope_ids(segments, self.position_id_per_seconds)
            out[:, row, span] = ids
        return out.to(input_ids.device), nxt.to(input_ids.device)

    # -- forward and generation -----------------------------------------------------------------
    def forward(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cu_seqlens: torch.Tensor | None = None,
        *,
        input_ids: torch.Tensor,
        token_ids: dict[str, int],
        pixel_values: Pictures | None = None,
        video_pixels: Pictures | None = None,
        video_frames: torch.Tensor | None = None,
        video_timestamps: Sequence[float] | None = None,
        dummy_inputs: bool = False,
        **_: Any,
    ) -> torch.Tensor:
        """Logits. `position_ids` of shape [3, B, L] are used as given; otherwise (1-D ids from a collator) the
        TM-RoPE ids are computed from the tokens, per sample (per `cu_seqlens` piece of a packed row)."""
        embeds, visual_mask, deepstack, grids = self.add_vision(
            inputs_embeds, input_ids, token_ids, pixel_values, video_pixels, video_frames, dummy_inputs
        )
        if position_ids is None or position_ids.ndim != 3:
            position_ids, _ = self.rope_ids(input_ids, token_ids, grids, video_timestamps, video_frames,
                                            None if cu_seqlens is not None else attention_mask, cu_seqlens)
        kwargs = {"attention_mask": attention_mask}
        if cu_seqlens is not None:
            kwargs = packed_inputs(self.model.config.text_config, cu_seqlens, embeds)
        hidden = self.model.model.language_model(
            inputs_embeds=embeds, position_ids=position_ids, use_cache=False, visual_pos_masks=visual_mask,
            deepstack_visual_embeds=deepstack, **kwargs,
        ).last_hidden_state
        return self.model.lm_head(hidden)

    def prefill(self, inputs_embeds, attention_mask, *, input_ids, token_ids, pixel_values=None, video_pixels=None,
                video_frames=None, video_timestamps=None, **_) -> tuple[torch.Tensor, DecodeState]:
        """Logits [B, vocab] after each left-padded prompt (pictures scattered, DeepStack added, TM-RoPE ids from the
        tokens), and the cache with each row's next free TM-RoPE id, which decoding steps continue from."""
        embeds, visual_mask, deepstack, grids = self.add_vision(inputs_embeds, input_ids, token_ids, pixel_values,
                                                                video_pixels, video_frames)
        positions, nxt = self.rope_ids(input_ids, token_ids, grids, video_timestamps, video_frames, attention_mask)
        cache = DynamicCache(config=self.model.config.text_config)
        hidden = self.model.model.language_model(
            inputs_embeds=embeds, position_ids=positions, attention_mask=attention_mask, cache=cache,
            use_cache=True, visual_pos_masks=visual_mask, deepstack_visual_embeds=deepstack,
        ).last_hidden_state
        return self.model.lm_head(hidden[:, -1]), DecodeState(cache, attention_mask, nxt)

    def step(self, inputs_embeds: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Logits [R, vocab] after one more (text) token per row: all three TM-RoPE axes take the row's next id."""
        positions = state.advance().view(1, -1, 1).expand(3, -1, 1)
        hidden = self.model.model.language_model(
            inputs_embeds=inputs_embeds, position_ids=positions, attention_mask=state.attention_mask,
            cache=state.cache, use_cache=True,
        ).last_hidden_state
        return self.model.lm_head(hidden[:, -1])


def _images(pixels: Pictures | None) -> list[torch.Tensor]:
    return [] if pixels is None else [p.unsqueeze(0) for p in pixels]


def _videos(pixels: Pictures | None, frames: torch.Tensor | None) -> list[torch.Tensor]:
    if pixels is None or not len(pixels):
        return []
    if frames is None:
        raise ValueError("video_pixels need video_frames (frames per video)")
    if isinstance(pixels, torch.Tensor):
        return list(pixels.split(frames.tolist()))
    # A list of frames: videos of different sizes in one batch; a video's own frames all share its size.
    ends = torch.cumsum(frames, 0).tolist()
    return [torch.stack(list(pixels[end - n : end])) for end, n in zip(ends, frames.tolist())]


def _widen(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """`values` placed at the True slots of `keep`, zeros elsewhere."""
    out = values.new_zeros(keep.shape[0], values.shape[-1])
    out[keep] = values
    return out


def _video_segments(grids, timestamps, frames, merge, temporal_patch) -> Iterator[Video]:
    """One `Video` per video grid, each temporal grid at the time of its first frame (1 s apart without times,
    the release's default `second_per_grids`)."""
    grid = grids.get("video")
    if grid is None:
        return
    per_video: list = [None] * len(grid)
    if timestamps is not None:  # seconds of every frame, video after video (a tensor or a sequence of floats)
        ends = itertools.accumulate(frames.tolist())
        per_video = [[float(x) for x in timestamps[end - n : end]] for n, end in zip(frames.tolist(), ends)]
    for (t, h, w), times in zip(grid.tolist(), per_video):
        steps = [float(x) for x in times[::temporal_patch]] if times is not None else [float(k) for k in range(t)]
        yield Video(t, h // merge, w // merge, timestamps=steps)


def _size(segment: Image | Video) -> int:
    audio = getattr(segment, "audio", None)
    return segment.t * segment.h * segment.w + (audio.n if audio is not None else 0)


def _check_order(video: Video, is_video: torch.Tensor, ids_per_second: float) -> None:
    """The interleaved block's tokens must lie in the order the positions assume (same time scale as the processor)."""
    expected = audio_in_video_order(video, ids_per_second) < video.t * video.h * video.w
    if not torch.equal(expected, is_video.cpu()):
        raise ValueError(f"a video's interleaved audio tokens are not in time order at {ids_per_second} ids per "
                         "second; was the processor built for this model (VideoSpec.ids_per_second)?")


def _segment(kind, n, items, merge):
    if kind is None:
        return Text(n)
    if kind == "audio":
        return Audio(n)  # the release numbers audio tokens consecutively (get_rope_index_qwen3omni)
    item = next(items["video" if kind == AUDIO_IN_VIDEO else kind], None)
    if item is None:
        raise ValueError(f"a run of {n} {kind} placeholders has no {kind.split('+')[0]} input")
    segment = Image(int(item[0]), int(item[1]) // merge, int(item[2]) // merge) if kind == "image" else item
    if kind == AUDIO_IN_VIDEO and n > _size(segment):
        segment = replace(segment, audio=Audio(n - _size(segment)))
    if _size(segment) != n:
        raise ValueError(f"a run of {n} {kind} placeholders for a grid of {segment.t * segment.h * segment.w} tokens")
    return segment


def _samples(input_ids, attention_mask, cu_seqlens) -> Iterator[tuple[int, Any]]:
    """(row, token selector) of every sample: a packed row's `cu_seqlens` pieces, else each row's unpadded tokens."""
    if cu_seqlens is not None:
        width = input_ids.shape[1]
        for start, end in zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist()):
            yield start // width, slice(start % width, (end - 1) % width + 1)
        return
    for row in range(input_ids.shape[0]):
        yield row, (slice(None) if attention_mask is None else attention_mask[row].bool().cpu())
