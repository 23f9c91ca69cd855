"""`valley3 export`: a trained model and its processor written as an HF folder (the Valley3 release's layout)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from safetensors import safe_open
from torch import nn

from valley3.data.processor import OmniProcessor
from valley3.models.export import export


def export_with_processor(model: nn.Module, processor: OmniProcessor, out: str | Path, max_shard_size="5GB") -> Path:
    """`export` with what the processor knows: its tokenizer (placeholder tokens added), its chat template as Jinja,
    and how it samples videos (frame rate, audio interleaved in video or not).

    Args:
        model: the OmniModel the processor was built for.
        processor: its OmniProcessor (`OmniStage.processor`).
        out: the folder to write.
        max_shard_size: the most bytes per safetensors file, e.g. "5GB".
    """
    video = processor.video
    return export(model, out, max_shard_size=max_shard_size, tokenizer=processor.tokenizer,
                  chat_template=processor.template.jinja(), fps=video.fps, audio_in_video=video.audio_in_video)


def summary(folder: str | Path) -> str:
    """What an export folder holds: layout, files, tensors and parameters, token ids, the processor's defaults."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    meta = config["valley3"]
    lines = [f"wrote {folder} ({meta['layout']} layout)"]
    tensors = params = 0
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        note = ""
        if file.suffix == ".safetensors":
            with safe_open(file, framework="pt") as f:
                shapes = [f.get_slice(name).get_shape() for name in f.keys()]  # noqa: SIM118 (not a dict)
            count = sum(math.prod(s) for s in shapes)
            tensors, params = tensors + len(shapes), params + count
            note = f"  {len(shapes)} tensors, {count:,} parameters"
        lines.append(f"  {file.name:<34} {_size(file.stat().st_size):>9}{note}")
    lines.append(f"  total: {tensors} tensors, {params:,} parameters")
    if meta["layout"] != "valley_omni":
        lines.append(f"  load with valley3.models.export.load({str(folder)!r})")
        return "\n".join(lines)
    ids = {k.removesuffix("_token_id"): v for k, v in config.items() if k.endswith("_token_id")}
    lines.append("  token ids: " + ", ".join(f"{k} {v}" for k, v in ids.items()))
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    defaults = {k: tokenizer[k] for k in ("position_id_per_seconds", "fps", "use_audio_in_video") if k in tokenizer}
    lines.append("  processor defaults: " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    lines.append("  release: ValleyOmniForConditionalGeneration.from_pretrained(DIR), "
                 "ValleyOmniProcessor.from_pretrained(DIR)")
    if "fps" not in defaults:
        lines.append("  videos were sampled by count, not at a fixed rate: call the release's processor with the fps "
                     "they span (it spaces grids temporal_patch_size / fps seconds apart; default 1 fps)")
    if defaults.get("use_audio_in_video"):
        lines.append("  pass use_audio_in_video=True to the release model's generate/forward as well (a call "
                     "argument there, not a config field)")
    return "\n".join(lines)


def _size(nbytes: float) -> str:
    if nbytes < 1000:
        return f"{nbytes:.0f} B"
    for unit in ("KB", "MB", "GB"):
        nbytes /= 1000
        if nbytes < 1000 or unit == "GB":
            return f"{nbytes:.1f} {unit}"


def main(argv: list[str]) -> Path:
    """`valley3 export --ckpt CKPT --out DIR`: rebuild the checkpoint's stage, export its model and processor."""
    from valley3.stages.reject_sample import load_stage

    parser = argparse.ArgumentParser(
        prog="valley3 export", description="Write a checkpoint's model, tokenizer and processor as an HF folder: "
        "the Valley3 release's valley_omni layout for a Qwen3-VL + AuT model, valley3's plain layout otherwise.")
    parser.add_argument("--ckpt", required=True, help="Lightning checkpoint written by `valley3 fit`")
    parser.add_argument("--out", required=True, help="output folder (created; old weight files in it are removed)")
    parser.add_argument("--max-shard-size", default="5GB", help="largest safetensors file, e.g. 5GB, 200MB")
    args = parser.parse_args(argv)
    stage = load_stage(args.ckpt)
    folder = export_with_processor(stage.model, stage.processor, args.out, args.max_shard_size)
    print(summary(folder))
    return folder
