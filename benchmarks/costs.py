"""Cost-pass benchmark: samples/s of the offline packer's pass from metadata vs by decoding, per modality."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests/data/zoo.py writes the media
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread per pass, as in a loader worker

import torch  # noqa: E402

from tests.data import zoo  # noqa: E402
from valley3.data.datamodules.base import SampleDataset  # noqa: E402
from valley3.data.pack_index import measure  # noqa: E402
from valley3.data.packing import PackBudget  # noqa: E402
from valley3.data.processor import VideoSpec  # noqa: E402
from valley3.data.schema import MediaRef, Sample, Turn  # noqa: E402
from valley3.models import OmniModel  # noqa: E402
from valley3.models.audio import AuTEncoder  # noqa: E402
from valley3.models.decoders import Qwen3VLDecoder  # noqa: E402
from valley3.stages.base import build_processor  # noqa: E402
from valley3.threads import available_cores  # noqa: E402

GOAL = 20.0  # metadata pass / decoding pass, samples/s, on every modality
ABOUT = """\
    python benchmarks/costs.py             # ~10 min on 2 busy CPU cores; exits 1 if a goal is missed or a cost differs

Media are written once into a temporary folder (tests/data/zoo.py), and --samples samples per modality cycle over
them, split equally over the modality's formats: images are 1024x768 JPEGs, and 4000x3000 (12 MP) phone-style
JPEGs turned by EXIF; audio is 10-20 s of 16 kHz FLAC (ASR corpora), 44.1 kHz stereo WAV, 44.1 kHz MP3 and 48 kHz
AAC in .m4a; videos are 10 s H.264 MP4s, 480x270 at 25 fps with a 16 kHz AAC track. The processor is the tiny
Valley3 model's (Qwen3-VL native resolution, frame pairs, AuT audio, 16 frames per video plus its audio track).
Both passes are `pack_index.measure` over the same samples in one process with one thread (torch, tokenizer), as
in a loader worker, in alternating blocks of 50 samples so both see the same background load; the decoding pass is the processor as it trains (reduced-scale JPEG decoding
included). The metadata pass is also run on every available core. 1M samples: 1e6 / (samples/s).
"""


def media(root: Path, files: int) -> dict[str, dict[str, list[str]]]:
    """Per modality, per format: the files."""
    out: dict[str, dict[str, list[str]]] = {
        "image": {"1024x768 JPEG": [], "12 MP JPEG, EXIF-turned": []},
        "audio": {"16 kHz FLAC": [], "44.1 kHz stereo WAV": [], "44.1 kHz MP3": [], "48 kHz AAC (.m4a)": []},
        "video": {"10 s 480x270 MP4 + AAC": []},
    }
    for i in range(files):
        out["image"]["1024x768 JPEG"].append(zoo.image(root / f"i{i}.jpg", 1024, 768, seed=i, quality=90))
        seconds = 10 + i % 11
        audio = out["audio"]
        audio["16 kHz FLAC"].append(zoo.sound(root / f"a{i}.flac", seconds, 16000))
        audio["44.1 kHz stereo WAV"].append(zoo.sound(root / f"a{i}.wav", seconds, 44100, channels=2))
        audio["44.1 kHz MP3"].append(zoo.sound(root / f"a{i}.mp3", seconds, 44100))
        audio["48 kHz AAC (.m4a)"].append(zoo.encoded_sound(root / f"a{i}.m4a", seconds, 48000, "aac"))
        if i < max(2, files // 10):  # the slowest to write
            out["image"]["12 MP JPEG, EXIF-turned"].append(
                zoo.image(root / f"big{i}.jpg", 4000, 3000, orientation=6, seed=i, quality=90))
            out["video"]["10 s 480x270 MP4 + AAC"].append(zoo.video(root / f"v{i}.mp4", 480, 270, frames=250, fps=25))
    return out


def samples(kind: str, paths: list[str], n: int) -> list[Sample]:
    turns = [Turn("user", f"<{kind}>Describe this product."), Turn("assistant", "A red box with a silver lid.")]
    return [Sample(f"{kind}{i}", turns, [MediaRef(kind, paths[i % len(paths)])]) for i in range(n)]


def timed(dataset: SampleDataset, budget: PackBudget, ids: list[int], metadata: bool, workers: int = 0):
    start = time.perf_counter()
    costs, stats = measure(dataset, budget, ids, 100.0, num_workers=workers, metadata=metadata)
    return time.perf_counter() - start, costs, stats


def run(data: list[Sample], processor, block: int = 50) -> dict:
    """Seconds of each pass over `data` (alternating blocks), their costs, and the items the metadata pass decoded."""
    budget, ids = PackBudget(1 << 20), sorted(processor.token_ids.values())
    out = {"decode": 0.0, "metadata": 0.0, "costs": {"decode": [], "metadata": []}, "decoded": 0, "n": len(data)}
    for start in range(0, len(data), block):
        part = SampleDataset(data[start : start + block], processor)
        for mode in ("decode", "metadata") if (start // block) % 2 == 0 else ("metadata", "decode"):
            seconds, costs, stats = timed(part, budget, ids, metadata=mode == "metadata")
            out[mode] += seconds
            out["costs"][mode] += costs
            out["decoded"] += stats.decoded if mode == "metadata" else 0
    cores = available_cores()
    seconds, costs, _ = timed(SampleDataset(data, processor), budget, ids, True, cores if cores > 1 else 0)
    out["parallel"], out["same"] = seconds, out["costs"]["decode"] == out["costs"]["metadata"] == costs
    out["same"] = out["same"] and None not in costs
    return out


def total(parts: list[dict]) -> dict:
    keys = ("decode", "metadata", "parallel", "decoded", "n")
    return {**{k: sum(p[k] for p in parts) for k in keys}, "same": all(p["same"] for p in parts)}


def _hours(rate: float) -> str:
    hours = 1e6 / rate / 3600
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:,.0f} min"


def row(name: str, r: dict) -> str:
    decode, metadata, parallel = (r["n"] / r[k] for k in ("decode", "metadata", "parallel"))
    return (f"| {name} | {r['n']} | {decode:,.1f} | {metadata:,.0f} | {metadata / decode:,.0f}x | {parallel:,.0f} "
            f"| {_hours(decode)} / {_hours(metadata)} / {_hours(parallel)} | {'yes' if r['same'] else 'NO'} "
            f"| {r['decoded']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="samples per modality")
    parser.add_argument("--files", type=int, default=40, help="distinct files per format (12 MP JPEGs, videos: a tenth)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = OmniModel(Qwen3VLDecoder("tiny-qwen3-vl"), audio=AuTEncoder("tiny-aut"))
    processor = build_processor(model, video=VideoSpec(num_frames=16))
    cores = available_cores()
    table: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="valley3-costs-") as tmp:
        start = time.perf_counter()
        files = media(Path(tmp), args.files)
        print(f"wrote the media in {time.perf_counter() - start:.0f} s; {os.cpu_count()} cores, {cores} available",
              file=sys.stderr)
        for kind, formats in files.items():
            share = args.samples // len(formats)
            table[kind] = {name: run(samples(kind, paths, share), processor) for name, paths in formats.items()}
            print(f"{kind} done", file=sys.stderr)
    print(f"| modality | samples | decoding pass, samples/s | metadata pass, samples/s | speedup | metadata pass on "
          f"{cores} processes, samples/s | 1M samples: decoding / metadata / metadata x{cores} | costs identical "
          f"| items the metadata pass decoded |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    checks = {}
    for kind, formats in table.items():
        whole = total(list(formats.values()))
        print(row(f"**{kind}**", whole))
        for name, r in formats.items() if len(formats) > 1 else ():
            print(row(f"{kind}: {name}", r))
        speedup = whole["decode"] / whole["metadata"]
        checks[f"{kind}: metadata pass {speedup:.0f}x >= {GOAL:.0f}x the decoding pass, costs identical"] = (
            speedup >= GOAL and whole["same"])
    for goal, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
