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
    python benchmarks/costs.py             # ~5 min on 2 CPU cores; exits 1 if a goal is missed or a cost differs

Media are written once into a temporary folder (tests/data/zoo.py), then --samples samples per modality cycle over
them: images are 1024x768 JPEGs and every tenth a 4000x3000 (12 MP) phone-style JPEG turned by EXIF; audio is
10-20 s of 16 kHz WAV and every third a 44.1 kHz AAC .m4a; videos are 10 s H.264 MP4s, 480x270 at 25 fps with
a 16 kHz AAC track. The processor is the tiny Valley3 model's (Qwen3-VL native resolution, frame pairs, AuT audio,
16 frames per video and its audio track). Both passes are `pack_index.measure` over the same samples, one process
each, in alternating blocks of 100 samples so that both see the same background load. The metadata pass is also
run on every available core. The 1M extrapolation is 1e6 / samples/s.
"""


def media(root: Path, files: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"image": [], "audio": [], "video": []}
    for i in range(files):
        big = i % 10 == 9
        out["image"].append(zoo.image(root / f"i{i}.jpg", 4000 if big else 1024, 3000 if big else 768,
                                      orientation=6 if big else 1, seed=i, quality=90))
        if i % 3 == 2:
            out["audio"].append(zoo.encoded_sound(root / f"a{i}.m4a", 10 + i % 11, 44100, "aac"))
        else:
            out["audio"].append(zoo.sound(root / f"a{i}.wav", 10 + i % 11, 16000))
        if i < max(4, files // 5):  # videos take longest to write
            out["video"].append(zoo.video(root / f"v{i}.mp4", 480, 270, frames=250, fps=25))
    return out


def samples(kind: str, paths: list[str], n: int) -> list[Sample]:
    turns = [Turn("user", f"<{kind}>Describe this product."), Turn("assistant", "A red box with a silver lid.")]
    return [Sample(f"{kind}{i}", turns, [MediaRef(kind, paths[i % len(paths)])]) for i in range(n)]


def timed(dataset: SampleDataset, budget: PackBudget, ids: list[int], metadata: bool, workers: int = 0):
    start = time.perf_counter()
    costs, stats = measure(dataset, budget, ids, 100.0, num_workers=workers, metadata=metadata)
    return time.perf_counter() - start, costs, stats


def run(kind: str, data: list[Sample], processor, block: int = 100) -> dict[str, float]:
    budget, ids = PackBudget(1 << 20), sorted(processor.token_ids.values())
    seconds = {"decode": 0.0, "metadata": 0.0}
    costs: dict[str, list] = {"decode": [], "metadata": []}
    decoded = 0
    for start in range(0, len(data), block):
        part = SampleDataset(data[start : start + block], processor)
        for mode in ("decode", "metadata") if (start // block) % 2 == 0 else ("metadata", "decode"):
            t, c, stats = timed(part, budget, ids, metadata=mode == "metadata")
            seconds[mode] += t
            costs[mode] += c
            decoded += stats.decoded if mode == "metadata" else 0
    cores = available_cores()
    parallel = timed(SampleDataset(data, processor), budget, ids, True, cores if cores > 1 else 0)
    same = costs["decode"] == costs["metadata"] == parallel[1] and None not in costs["decode"]
    rates = {mode: len(data) / s for mode, s in seconds.items()}
    return {"decode": rates["decode"], "metadata": rates["metadata"], "parallel": len(data) / parallel[0],
            "cores": cores, "speedup": rates["metadata"] / rates["decode"], "same": same, "decoded": decoded,
            "tokens": sum(c.tokens for c in costs["decode"] if c)}


def _hours(rate: float) -> str:
    hours = 1e6 / rate / 3600
    return f"{hours:,.1f} h" if hours >= 1 else f"{hours * 60:,.0f} min"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000, help="samples per modality")
    parser.add_argument("--files", type=int, default=60, help="distinct images and audio files (videos: a fifth)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = OmniModel(Qwen3VLDecoder("tiny-qwen3-vl"), audio=AuTEncoder("tiny-aut"))
    processor = build_processor(model, video=VideoSpec(num_frames=16))
    with tempfile.TemporaryDirectory(prefix="valley3-costs-") as tmp:
        start = time.perf_counter()
        files = media(Path(tmp), args.files)
        print(f"wrote {sum(map(len, files.values()))} media files in {time.perf_counter() - start:.0f} s; "
              f"{os.cpu_count()} cores, {available_cores()} available", file=sys.stderr)
        table = {kind: run(kind, samples(kind, paths, args.samples), processor) for kind, paths in files.items()}
    print(f"| modality | samples | decoding pass, samples/s | metadata pass, samples/s | speedup | metadata, "
          f"{table['image']['cores']} processes | 1M samples: decoding / metadata / metadata x{table['image']['cores']} "
          f"| costs identical | decoded by the metadata pass |")
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for kind, r in table.items():
        print(f"| {kind} | {args.samples} | {r['decode']:,.1f} | {r['metadata']:,.0f} | {r['speedup']:,.0f}x "
              f"| {r['parallel']:,.0f} | {_hours(r['decode'])} / {_hours(r['metadata'])} / {_hours(r['parallel'])} "
              f"| {'yes' if r['same'] else 'NO'} | {r['decoded']} |")
    checks = {f"{kind}: metadata pass >= {GOAL:.0f}x the decoding pass, costs identical": r["speedup"] >= GOAL and r["same"]
              for kind, r in table.items()}
    for goal, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
