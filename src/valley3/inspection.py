"""`valley3 inspect`: what a model config costs in parameters and tokens, built on the meta device (no weights)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from jsonargparse import ArgumentParser
from torch import nn

from valley3.data.media.image import tile_grid
from valley3.data.media.video import sample_indices
from valley3.data.media_runs import VideoSpec
from valley3.models import OmniModel
from valley3.models.audio import AudioEncoder
from valley3.models.decoders import Decoder, Qwen3VLDecoder
from valley3.models.vision import VisionEncoder

IMAGE_SIZES = ((384, 384), (768, 1152), (1536, 1536), (384, 3072))  # (width, height) in pixels
FAMILIES = {OmniModel: None, VisionEncoder: "vision", AudioEncoder: "audio", Decoder: "decoder"}
DEFAULT_LR = 1e-4  # OmniStage's default_lr
MODEL_MAX_TILES = 9  # a bare model config has no stage: show Valley2's tiling (an experiment shows its own)
VIDEO = (60.0, 30.0)  # the clip a video row prices: seconds, frames per second


@dataclass
class TokenRow:
    """One line of the token table: an input, how many tiles it is cut into (0: not tiled), and its tokens."""

    item: str
    tiles: int
    tokens: float
    layout: str = ""  # e.g. "3x3 + thumbnail"


def load(config: str | os.PathLike) -> tuple[nn.Module, dict[str, float], float]:
    """The module a YAML describes, built on the meta device, with the stage's `lr` and `default_lr` if any.

    The YAML is an OmniModel config (configs/model/*.yaml), a single encoder or decoder config, or an
    experiment whose `model:` is a stage with `init_args.model` (then its lr settings are used).
    """
    path = Path(config).resolve()
    spec = yaml.safe_load(path.read_text())
    lr, default_lr = {}, DEFAULT_LR
    stage = _stage(spec)
    if stage is not None and "model" in stage.get("init_args", {}):
        args = stage["init_args"]
        lr, default_lr = dict(args.get("lr") or {}), float(args.get("default_lr", DEFAULT_LR))
        spec = args["model"]
        if isinstance(spec, str):
            path, spec = (path.parent / spec).resolve(), yaml.safe_load((path.parent / spec).read_text())
    if not isinstance(spec, dict) or "class_path" not in spec:
        what = f"a stage config ({stage.get('class_path', 'model:')}) without a model" if stage else "no class_path"
        raise ValueError(f"{config}: {what}; inspect a model or component config (configs/model/...) or an "
                         "experiment whose model.init_args.model names one")
    module_name, _, cls_name = spec["class_path"].rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    base = next((b for b in FAMILIES if issubclass(cls, b)), None)
    if base is None:
        raise TypeError(f"{spec['class_path']} is not a model, encoder or decoder")
    parser = ArgumentParser()
    parser.add_subclass_arguments(base, "obj")
    with _cwd(path.parent), torch.device("meta"):  # nested files resolve next to the YAML
        module = parser.instantiate_classes(parser.parse_object({"obj": spec})).obj
    return module, lr, default_lr


def stage_settings(config: str | os.PathLike) -> tuple[int | None, VideoSpec]:
    """The experiment's `max_tiles` (None for a bare model or component config) and video sampling."""
    stage = _stage(yaml.safe_load(Path(config).read_text()))
    if stage is None or "model" not in stage.get("init_args", {}):
        return None, VideoSpec()
    args = stage["init_args"]
    return int(args.get("max_tiles", 1)), VideoSpec(**(args.get("video") or {}))


def _stage(spec: dict) -> dict | None:
    return spec.get("model") if isinstance(spec, dict) and isinstance(spec.get("model"), dict) else None


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def components(module: nn.Module) -> dict[str, nn.Module]:
    """The model's named parts; a decoder that carries its own vision tower (Qwen3-VL) is split into its parts."""
    if isinstance(module, OmniModel):
        parts = module.components()
    else:
        parts = {next(name for base, name in FAMILIES.items() if isinstance(module, base)): module}
    out: dict[str, nn.Module] = {}
    for name, part in parts.items():
        inner = part.components() if isinstance(part, Decoder) and part.owns_vision else {name: part}
        out.update(inner)
    return out


def param_table(module: nn.Module, lr: dict[str, float] | None = None, default_lr: float = DEFAULT_LR) -> str:
    """Parameters per component; a component trains when its learning rate is above 0."""
    rows = ["| component | class | params | trainable | lr |", "|---|---|---:|---:|---:|"]
    total = trainable = 0
    for name, part in components(module).items():
        rate = (lr or {}).get(name, default_lr)
        n = sum(p.numel() for p in part.parameters())
        total, trainable = total + n, trainable + (n if rate > 0 else 0)
        rows.append(f"| {name} | {_class_name(part)} | {n:,} | {n if rate > 0 else 0:,} | {rate:g} |")
    rows.append(f"| total | | {total:,} | {trainable:,} | |")
    return "\n".join(rows)


def _class_name(part: nn.Module) -> str:
    """A part's class; for a group of modules (Qwen3-VL's language model + head), its members' classes."""
    if isinstance(part, nn.ModuleDict):
        return " + ".join(type(m).__name__ for m in part.values())
    return type(part).__name__


def token_rows(module: nn.Module, max_tiles: int = MODEL_MAX_TILES, frame: tuple[int, int] = (1280, 720),
               audio_seconds: float = 60.0, video: VideoSpec | None = None) -> list[TokenRow]:
    """Tokens per tile, per image (tiled like the processor when the encoder takes one square size), per video
    frame (never tiled; Qwen-VL ViTs take frames in pairs, so half a pair's cost), per video (sampled by `video`
    from a 60 s clip at 30 fps), and per second of audio: all from the components' own num_tokens."""
    parts = components(module)
    rows: list[TokenRow] = []
    vision = parts.get("vision")
    if vision is not None and not isinstance(vision, VisionEncoder):  # a VL decoder sizes and counts its pictures
        vision = module.decoder if isinstance(module, OmniModel) else module
    if vision is not None:
        omni = isinstance(module, OmniModel)
        square = isinstance(vision, VisionEncoder)  # a decoder that owns vision has no square size: never tiled
        count: Callable[[int, int], int] = (
            vision.image_num_tokens if not square else module.image_num_tokens if omni else vision.num_tokens
        )
        side = vision.image_size if square else 0
        if square:
            per_tile = count(side, side)
            rows.append(TokenRow(f"tile {side}x{side}", 1, per_tile))
        for width, height in IMAGE_SIZES:
            size = vision.input_size(height, width)
            if square and size == (side, side):  # a fixed-size encoder: dynamic tiling plus a thumbnail
                grid = tile_grid(width, height, side, max_tiles)
                n = grid.rows * grid.cols
                tiles = n + (1 if n > 1 else 0)  # InternVL adds the thumbnail only to a cut image
                layout = f"{grid.cols}x{grid.rows}" + (" + thumbnail" if n > 1 else "")
                rows.append(TokenRow(f"image {width}x{height}", tiles, tiles * per_tile, layout))
            else:  # native resolution: the whole image at its own (rounded) size
                rows.append(TokenRow(f"image {width}x{height} -> {size[1]}x{size[0]}", 0, count(*size)))
        rows += _video_rows(count(*vision.input_size(frame[1], frame[0])), frame, video or VideoSpec(),
                            vision.temporal_patch_size if isinstance(vision, Qwen3VLDecoder) else 1)
    audio = parts.get("audio")
    if audio is not None:
        count = module.audio_num_tokens if isinstance(module, OmniModel) else audio.num_tokens
        frames = math.floor(audio_seconds * audio.sampling_rate / audio.hop_length)
        rows.append(TokenRow(f"audio, per second ({type(audio).__name__})", 0, count(frames) / audio_seconds))
    return rows


def _video_rows(per_patch: int, frame: tuple[int, int], video: VideoSpec, temporal_patch: int) -> list[TokenRow]:
    """Per frame (a temporal patch's tokens over its frames) and per video as the processor samples it."""
    width, height = frame
    per_frame = per_patch / temporal_patch if temporal_patch > 1 else per_patch
    pair = f" ({temporal_patch}-frame patches)" if temporal_patch > 1 else ""
    seconds, fps = VIDEO
    frames = len(sample_indices(round(seconds * fps), fps, video.num_frames, video.fps, video.max_frames))
    sampling = f"{video.fps:g} fps" if video.fps else "uniform"
    return [TokenRow(f"video frame {width}x{height}{pair}", 0, per_frame),
            TokenRow(f"video {width}x{height}, {seconds:g} s: {frames} frames ({sampling}, max {video.max_frames})", 0,
                     -(-frames // temporal_patch) * per_patch)]


def token_table(rows: list[TokenRow]) -> str:
    lines = ["| input | tiles (cols x rows) | tokens |", "|---|---:|---:|"]
    for row in rows:
        tokens = f"{row.tokens:,.1f}" if isinstance(row.tokens, float) else f"{row.tokens:,}"
        tiles = f"{row.tiles} ({row.layout})" if row.layout else str(row.tiles or "-")
        lines.append(f"| {row.item} | {tiles} | {tokens} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`valley3 inspect --config FILE`: print the parameter and token tables of a model config."""
    parser = argparse.ArgumentParser(prog="valley3 inspect", description=__doc__)
    parser.add_argument("--config", required=True, help="a model, component or experiment YAML")
    parser.add_argument("--lr", action="append", default=[], metavar="COMPONENT=LR",
                        help="learning rate of a component (0 freezes it); overrides the experiment's")
    parser.add_argument("--max-tiles", type=int, default=None,
                        help=f"most tiles per image, thumbnail not counted (default: the experiment's max_tiles; "
                             f"{MODEL_MAX_TILES} for a model or component config)")
    parser.add_argument("--frame", default="1280x720", help="video frame size, WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    try:
        module, lr, default_lr = load(args.config)
    except (ValueError, TypeError) as err:
        raise SystemExit(f"valley3 inspect: {err}") from None
    max_tiles, video = stage_settings(args.config)
    for item in args.lr:
        name, _, value = item.partition("=")
        lr[name] = float(value)
    width, height = (int(v) for v in args.frame.lower().split("x"))
    print(f"{args.config} (built on the meta device; no weights loaded)\n")
    print(param_table(module, lr, default_lr) + "\n")
    rows = token_rows(module, args.max_tiles or max_tiles or MODEL_MAX_TILES, (width, height), video=video)
    if rows:
        print(token_table(rows))
    return 0
