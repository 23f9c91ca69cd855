"""OmniModel: encoders -> connectors -> decoder. Embeds text, encodes each modality once per batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Any

import torch
from torch import nn
from torch.distributed.fsdp import FSDPModule

from valley3.data.batch import Media, Pictures
from valley3.models.audio.base import AudioEncoder
from valley3.models.connectors.audio_mlp import AudioMLPConnector
from valley3.models.connectors.mlp import MLPConnector
from valley3.models.decoders.base import Decoder
from valley3.models.decoding import DecodeState, generate_ids
from valley3.models.vision.base import VisionEncoder
from valley3.models.init_args import records_init_args

# A connector is given as a class (or partial) that OmniModel calls with (encoder width, decoder width),
# so a YAML never repeats the widths of the components it connects.
ConnectorFactory = Callable[[int, int], nn.Module]

MEDIA_TOKENS = {"image": "<|image_pad|>", "video": "<|video_pad|>", "audio": "<|audio_pad|>"}


class PlaceholderMismatch(ValueError):
    """The placeholder tokens of a sample and the features its media produced differ in number."""


@records_init_args
class OmniModel(nn.Module):
    """A decoder LM with optional vision and audio towers whose features replace placeholder tokens.

    Args:
        decoder: the language model; its `owns_vision` picks the architecture (see `models.decoders.base.Decoder`).
        vision: an image encoder, or None for a model without vision.
        vision_connector: builds the vision projector from (vision width, decoder width); MLP by default.
        audio: an audio encoder, or None for a model without audio.
        audio_connector: builds the audio projector from (audio width, decoder width); Valley3's by default.
        media_tokens: the placeholder token string per modality (must exist in the tokenizer).
        dummy_inputs: in training (with gradients on), run a trainable tower whose media a batch lacks on a tiny
            zero input and add 0 x its output, so ranks with different modality mixes call the same modules (FSDP's
            all-gathers stay in step) and every parameter gets a gradient (DDP needs no `find_unused_parameters`).
            The loss is unchanged bit for bit; the tower's gradient is exactly zero.
    """

    def __init__(
        self,
        decoder: Decoder,
        vision: VisionEncoder | None = None,
        vision_connector: ConnectorFactory | None = None,
        audio: AudioEncoder | None = None,
        audio_connector: ConnectorFactory | None = None,
        media_tokens: dict[str, str] | None = None,
        dummy_inputs: bool = True,
    ):
        super().__init__()
        if vision is not None and decoder.owns_vision:
            raise ValueError(
                f"{type(decoder).__name__} carries its own vision tower; give no `vision` (and no vision_connector)"
            )
        self.decoder = decoder
        self.vision = vision
        self.audio = audio
        width = decoder.hidden_size
        self.vision_connector = (vision_connector or MLPConnector)(vision.embed_dim, width) if vision else None
        self.audio_connector = (audio_connector or AudioMLPConnector)(audio.embed_dim, width) if audio else None
        self.media_tokens = {**MEDIA_TOKENS, **(media_tokens or {})}
        self.token_ids: dict[str, int] = {}
        self.dummy_inputs = dummy_inputs

    # -- what the processor reads: the same functions the features come from ----------------------
    def image_num_tokens(self, height: int, width: int) -> int:
        if self.decoder.owns_vision:
            return self.decoder.image_num_tokens(height, width)
        return self.vision_connector.num_tokens(self.vision.grid(height, width))

    def audio_num_tokens(self, num_frames: int) -> int:
        return self.audio_connector.num_tokens(self.audio.num_tokens(num_frames))

    def components(self) -> dict[str, nn.Module]:
        """The named parts that learning rates and freezing address."""
        parts = {
            "vision": self.vision,
            "vision_connector": self.vision_connector,
            "audio": self.audio,
            "audio_connector": self.audio_connector,
            "decoder": self.decoder,
        }
        if self.decoder.owns_vision:  # Qwen3-VL: "vision" is its ViT, "decoder" its language model and head
            parts.update(self.decoder.components())
        return {name: module for name, module in parts.items() if module is not None}

    def bind_tokenizer(self, token_ids: dict[str, int], vocab_size: int) -> None:
        """Record the placeholder ids and grow the vocabulary to the tokenizer's size."""
        missing = [kind for kind in self.media_tokens if kind not in token_ids]
        if missing:
            raise KeyError(f"no token id for media kind(s) {missing}")
        self.token_ids = dict(token_ids)
        self.decoder.resize_vocab(vocab_size)

    # -- forward --------------------------------------------------------------------------------
    def embed(self, input_ids: torch.Tensor, media: Media | None = None, sample_ids: Sequence[str] | None = None,
              cu_seqlens: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with every placeholder replaced by its media feature, in order.

        Pictures (`media.pixel_values`, and `media.video_pixels`: the frames of every video one after another) come
        as [N, 3, H, W], or as a list of [3, H, W] when sizes differ (native resolution). In a packed batch the
        `*_owner` tensors index samples (not rows) and `cu_seqlens` says where each sample lies, so a mismatch still
        names the sample at fault (`sample_ids`). A decoder that carries its own vision takes the pictures itself
        (see `forward`); here only audio is scattered for it.
        """
        if not self.token_ids:
            raise RuntimeError("OmniModel.bind_tokenizer(...) must run before the model sees tokens")
        media = media or Media()
        embeds = self.decoder.embed_tokens(input_ids)
        where = (sample_ids, cu_seqlens)
        given = {"audio": media.has_audio}
        if not self.decoder.owns_vision:
            given |= {"image": media.has_images, "video": media.has_videos}
            if media.has_images or media.has_videos:
                # Images and video frames in one pass per picture size: under FSDP every rank must call the tower
                # as often as the others, whichever of the two its batch holds.
                images = len(media.pixel_values) if media.has_images else 0
                features, per_picture = self._encode_pictures(_join_pictures(media.pixel_values, media.video_pixels))
                split = sum(per_picture[:images])
                if media.has_images:
                    embeds = self._scatter(embeds, input_ids, "image", features[:split], per_picture[:images],
                                           media.image_owner, *where)
                if media.has_videos:
                    per_video = [sum(n) for n in _split(per_picture[images:], media.video_frames.tolist())]
                    embeds = self._scatter(embeds, input_ids, "video", features[split:], per_video, media.video_owner,
                                           *where)
            embeds = self._with_dummy_inputs(embeds, "vision", media.has_images or media.has_videos)
        if media.has_audio:
            features = self.audio_connector(self.audio(media.audio_features, media.audio_lengths))
            per_item = [self.audio_num_tokens(n) for n in media.audio_lengths.tolist()]
            embeds = self._scatter(embeds, input_ids, "audio", features, per_item, media.audio_owner, *where)
        embeds = self._with_dummy_inputs(embeds, "audio", media.has_audio)
        for kind, present in given.items():
            if not present and (input_ids == self.token_ids[kind]).any():
                raise PlaceholderMismatch(f"the batch has {kind} placeholder tokens but no {kind} inputs")
        return embeds

    def _runs_dummy_inputs(self) -> bool:
        return self.dummy_inputs and self.training and torch.is_grad_enabled()

    def _with_dummy_inputs(self, embeds: torch.Tensor, kind: str, given: bool) -> torch.Tensor:
        """`embeds` + 0 x the features of a zero input through `kind`'s tower (vision or audio) when the batch has
        no input for it (see `dummy_inputs`): the same values bit for bit, an exactly-zero gradient for the tower."""
        vision = kind == "vision"
        encoder, connector = (self.vision, self.vision_connector) if vision else (self.audio, self.audio_connector)
        if encoder is None or given or not self._runs_dummy_inputs():
            return embeds
        trainable = any(p.requires_grad for p in [*encoder.parameters(), *connector.parameters()])
        if not trainable and not any(isinstance(m, FSDPModule) for m in encoder.modules()):
            return embeds  # frozen and unsharded: no collective and no gradient to keep in step
        zeros = {"dtype": embeds.dtype, "device": embeds.device}
        if vision:
            size = encoder.input_size(encoder.image_size, encoder.image_size)
            features, _ = self._encode_pictures(torch.zeros(1, 3, *size, **zeros))
        else:
            frames = next(n for n in range(1, 100_000) if self.audio_num_tokens(n) > 0)  # shortest clip with a token
            lengths = torch.tensor([frames], device=embeds.device)
            features = connector(encoder(torch.zeros(1, encoder.n_mels, frames, **zeros), lengths))
        return embeds + 0 * features.sum().to(embeds.dtype)

    def _encode_pictures(self, pixels: Pictures) -> tuple[torch.Tensor, list[int]]:
        """Connector outputs of every picture, concatenated in order [sum tokens, width], and tokens per picture.

        Pictures of one size share a forward pass; a native-resolution batch runs one pass per distinct size, or one
        pass in all when the encoder has `forward_many` (Qwen2.5-ViT).
        """
        if isinstance(pixels, torch.Tensor):
            features = self.vision_connector(self.vision(pixels), self.vision.grid(*pixels.shape[-2:]))
            return features.flatten(0, 1), [features.shape[1]] * features.shape[0]
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, picture in enumerate(pixels):
            by_size.setdefault(tuple(picture.shape[-2:]), []).append(i)
        together = None
        if len(by_size) > 1 and hasattr(self.vision, "forward_many"):
            # An encoder that takes mixed sizes in one pass (Qwen2.5-ViT) gets them all at once: one tower call per
            # batch on every rank, which FSDP's paired all-gathers need.
            together = self.vision.forward_many(list(pixels))
        out: list[torch.Tensor | None] = [None] * len(pixels)
        for (height, width), indices in by_size.items():
            if together is not None:
                encoded = torch.stack([together[i] for i in indices])
            else:
                encoded = self.vision(torch.stack([pixels[i] for i in indices]))
            features = self.vision_connector(encoded, self.vision.grid(height, width))
            for i, feature in zip(indices, features):
                out[i] = feature
        return torch.cat(out), [feature.shape[0] for feature in out]

    def _scatter(self, embeds, input_ids, kind, features, per_item, owner, sample_ids, cu_seqlens) -> torch.Tensor:
        mask = self._check_placeholders(input_ids, kind, per_item, owner, sample_ids, cu_seqlens)
        if int(mask.sum()) != features.shape[0]:  # the encoder made other counts than `per_item` says
            raise PlaceholderMismatch(f"{int(mask.sum())} {kind} placeholders for {features.shape[0]} {kind} features")
        return embeds.masked_scatter(mask.unsqueeze(-1), features.to(embeds.dtype))

    def _check_placeholders(self, input_ids, kind, per_item, owner, sample_ids, cu_seqlens) -> torch.Tensor:
        """The placeholder mask of `kind`, after checking each sample has as many placeholders as its items make
        features (`per_item`). Per sample, not only in total: equal totals can still hide one sample's features
        shifted into another's placeholders."""
        mask = input_ids == self.token_ids[kind]
        placeholders, produced = self._counts(mask, per_item, owner, cu_seqlens)
        if placeholders != produced:
            names = list(sample_ids) if sample_ids is not None and owner is not None else None
            raise PlaceholderMismatch(self._mismatch_message(kind, placeholders, produced, names))
        return mask

    @staticmethod
    def _counts(mask, per_item, owner, cu_seqlens) -> tuple[list[int], list[int]]:
        """Placeholders and features per sample (per row, or per packed sample under `cu_seqlens`);
        batch totals when no `owner` says which sample each item belongs to."""
        if cu_seqlens is None:
            placeholders = mask.sum(dim=1).tolist()
        else:
            placeholders = [int(m.sum()) for m in mask.flatten().split(cu_seqlens.diff().tolist())]
        if owner is None:
            return [sum(placeholders)], [sum(per_item)]
        produced = [0] * len(placeholders)
        for row, n in zip(owner.tolist(), per_item):
            produced[row] += n
        return placeholders, produced

    @staticmethod
    def _mismatch_message(kind, placeholders, produced, names) -> str:
        names = names or [f"row {i}" for i in range(len(placeholders))]
        bad = [f"{n}: {p} placeholders, {f} features" for n, p, f in zip(names, placeholders, produced) if p != f]
        return f"{kind} placeholder count does not match the encoder's output for sample(s) " + "; ".join(bad)

    def _decoder_inputs(self, input_ids, media, sample_ids, cu_seqlens) -> tuple[torch.Tensor, dict[str, Any]]:
        """Token embeddings with OmniModel's media scattered in, and what the decoder takes besides: nothing for
        composed encoders; the tokens and the pictures for a decoder that carries its own vision (Qwen3-VL)."""
        if not self.decoder.owns_vision:
            return self.embed(input_ids, media, sample_ids, cu_seqlens), {}
        media = media or Media()
        self._check_native_pictures(input_ids, media, sample_ids, cu_seqlens)
        embeds = self.embed(input_ids, media, sample_ids, cu_seqlens)
        return embeds, {"input_ids": input_ids, "token_ids": self.token_ids, "pixel_values": media.pixel_values,
                        "video_pixels": media.video_pixels, "video_frames": media.video_frames,
                        "video_timestamps": media.video_timestamps}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, cu_seqlens: torch.Tensor | None = None,
                media: Media | None = None, sample_ids: Sequence[str] | None = None) -> torch.Tensor:
        """Logits [B, L, vocab]. `cu_seqlens` marks a packed batch (sample boundaries over the flattened rows), whose
        samples never attend to each other; `sample_ids` name the samples in errors (see `embed`)."""
        embeds, extra = self._decoder_inputs(input_ids, media, sample_ids, cu_seqlens)
        if extra:
            return self.decoder(embeds, attention_mask, position_ids, cu_seqlens,
                                dummy_inputs=self._runs_dummy_inputs(), **extra)
        return self.decoder(embeds, attention_mask=attention_mask, position_ids=position_ids, cu_seqlens=cu_seqlens)

    # -- cached decoding: the loop is `models.decoding.decode` ------------------------------------
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, media: Media | None = None,
                sample_ids: Sequence[str] | None = None):
        """Logits [B, vocab] after each left-padded prompt (its media encoded once) and the state to continue it."""
        embeds, extra = self._decoder_inputs(input_ids, media, sample_ids, None)
        return self.decoder.prefill(embeds, attention_mask, **extra)

    def decode_step(self, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """Logits [R, vocab] after appending `tokens` [R] (one per row of `state`)."""
        return self.decoder.step(self.decoder.embed_tokens(tokens[:, None]), state)

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int = 64,
                 media: Media | None = None, **kwargs: Any) -> torch.Tensor:
        """Continuation ids [B, new] of left-padded prompts; see `models.decoding.generate_ids` (greedy by default)."""
        return generate_ids(self, input_ids, attention_mask, max_new_tokens, media=media, **kwargs)

    def _check_native_pictures(self, input_ids, media: Media, sample_ids, cu_seqlens) -> None:
        """Per-sample placeholder check for a decoder that scatters pictures itself (Qwen3-VL), so a mismatch names
        the sample as the composed path does."""
        if media.has_images:
            per_item = [self.image_num_tokens(*p.shape[-2:]) for p in media.pixel_values]
            self._check_placeholders(input_ids, "image", per_item, media.image_owner, sample_ids, cu_seqlens)
        if media.has_videos:
            tp, frames = self.decoder.temporal_patch_size, media.video_frames.tolist()
            starts = [0, *accumulate(frames)][:-1]
            per_item = [-(-n // tp) * self.image_num_tokens(*media.video_pixels[start].shape[-2:])
                        for start, n in zip(starts, frames)]
            self._check_placeholders(input_ids, "video", per_item, media.video_owner, sample_ids, cu_seqlens)

    @property
    def block_classes(self) -> set[type[nn.Module]]:
        """Every component's FSDP wrap classes."""
        classes: set[type[nn.Module]] = set()
        for module in (self.vision, self.audio, self.decoder):
            if module is not None:
                classes |= module.block_classes
        return classes


def _join_pictures(images: Pictures | None, frames: Pictures | None) -> Pictures:
    """Images then video frames as one batch: a stacked [N, 3, H, W] when both are stacks of one size, else a list."""
    parts = [p for p in (images, frames) if p is not None and len(p) > 0]
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(p, torch.Tensor) for p in parts) and parts[0].shape[1:] == parts[1].shape[1:]:
        return torch.cat(parts)
    return [picture for p in parts for picture in p]


def _split(items: list[int], sizes: list[int]) -> list[list[int]]:
    """`items` cut into consecutive runs of the given sizes."""
    ends = list(accumulate(sizes))
    return [items[end - n : end] for end, n in zip(ends, sizes)]
