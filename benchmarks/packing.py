"""Packing benchmark: pad fraction, samples per pack and real-token throughput, packed vs padded vs grouped."""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from flop_model import Shape, long_tailed, speedups
from valley3.data.batch import Batch
from valley3.data.collate import PadCollator
from valley3.data.packing import Cost, PackBudget, PackingCollator, offline_packs
from valley3.data.processor import IGNORE_INDEX, Example
from valley3.models.decoders import HFDecoder
from valley3.stages.base import masked_loss

IMAGE = 196
ABOUT = """\
    python benchmarks/packing.py            # ~2 min on 2 CPU cores; exits 1 if a goal is missed

Two length mixes, drawn with a fixed seed, in tokens, scaled to a 2048-token pack (a quarter of an 8k context;
an image = 196 tokens, i.e. a 14x14 grid after the connector):

- "bimodal" (Valley2-like): 75% short single-image samples (one image + a prompt/answer of lognormal length,
  median 60, clipped to 16-320 tokens: 212-516 tokens) and 25% long multi-image / video samples (4-9 images
  or frame groups + 16-200 text tokens: 800-1964 tokens); mean ~530 tokens, so about 3.7 samples per pack
  (Valley2 reports about 3).
- "control": every sample exactly 512 tokens, so padding wastes nothing and packing can only add overhead.

Layouts: "packed" = first-fit-decreasing packs of <= 2048 tokens (the offline packer), padded to exactly 2048
(static shapes); "padded" = random batches padded to their longest sample; "grouped" = HF-style length
grouping (sorted within mega-batches of 50 batches). The padded layouts take as many samples per step as a pack
holds on average. Padding and samples per step are measured over all samples of a mix. Throughput is timed on
the samples of 32 random packs laid out all three ways (>= 30 steps per layout, so every layout trains on the
same samples): a training step (forward, token-mean loss, backward, AdamW) of the tiny Qwen3 decoder with the
"sdpa_varlen" backend (plain SDPA when not packed); after warm-up each step runs 3 times, interleaved with the
other layouts in rotating order, and its median time is kept. "real tokens/s" = real tokens / sum of those
step times (what an epoch takes); "median step tokens/s" = the median over steps of each step's own rate.
One torch thread by default: on a shared 2-core machine two OpenMP threads stall whenever one is descheduled,
which swings step times several-fold. Media encoders are left out: their cost per sample is the same in every
layout, and packing changes only the decoder's work.

The tiny decoder spends a far larger share of its FLOPs on attention than an 8B one, so its measured speedup
overstates a real model's. A FLOP model (benchmarks/flop_model.py: per token, the q/k/v/o, MLP and LM-head matrix
multiplies; per sample, causal attention's quadratic term; padding costs what a token costs) predicts the same
layouts' speedup at the tiny shape and at Valley3-8B's decoder (Qwen3-VL-8B's text tower, Qwen3-8B dims, read from
models/presets.py), and on a long-tailed mix (lognormal, median 570 and p99 4,462 tokens, 8,192-token packs), which
is not timed.
"""

GOALS = {"pad": 0.03, "bimodal": 2.2, "control": (0.95, 1.05)}


def bimodal(n: int, rng: np.random.Generator) -> list[int]:
    long = rng.random(n) < 0.25
    short = IMAGE + np.clip(rng.lognormal(np.log(60), 0.7, n), 16, 320).astype(int)
    multi = IMAGE * rng.integers(4, 10, n) + rng.integers(16, 201, n)
    return np.where(long, multi, short).tolist()


def examples(lengths: list[int], rng: np.random.Generator) -> list[Example]:
    out = []
    for i, n in enumerate(lengths):
        ids = torch.from_numpy(rng.integers(0, 1000, n))
        labels = ids.clone()
        labels[: n // 2] = IGNORE_INDEX  # the prompt (media and question) carries no loss
        out.append(Example(ids, labels, f"s{i}", "synthetic"))
    return out


def layouts(samples: list[Example], packs: list[list[Example]], per_step: int, seed: int) -> dict[str, list]:
    """The same samples as packs, as random padded batches, and as length-grouped padded batches."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(samples)).tolist()
    padded = [[samples[i] for i in order[s : s + per_step]] for s in range(0, len(order), per_step)]
    grouped, mega = [], 50 * per_step  # HF's group_by_length: sort within mega-batches, then shuffle batches
    for s in range(0, len(order), mega):
        chunk = sorted(order[s : s + mega], key=lambda i: -len(samples[i]))
        grouped += [[samples[i] for i in chunk[j : j + per_step]] for j in range(0, len(chunk), per_step)]
    rng.shuffle(grouped)
    return {"packed": packs, "padded": padded, "grouped": grouped}


def collate(groups: dict[str, list], max_tokens: int) -> dict[str, list[Batch]]:
    fns = {"packed": PackingCollator(0, pad_to=max_tokens), "padded": PadCollator(0), "grouped": PadCollator(0)}
    return {k: [fns[k](g) for g in v] for k, v in groups.items()}


def real(batch: Batch) -> int:
    return int(batch.attention_mask.sum())


def time_steps(batches: dict[str, list[Batch]], args) -> dict[str, list[float]]:
    """Median seconds of each step over `args.rounds` rounds; steps of the layouts interleave, order rotating."""
    torch.manual_seed(0)
    decoder = HFDecoder("tiny-qwen3", attn_implementation="sdpa_varlen")
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=1e-4)

    def step(batch: Batch) -> float:
        start = time.perf_counter()
        mask = None if batch.cu_seqlens is not None else batch.attention_mask
        logits = decoder(decoder.embed_tokens(batch.input_ids), mask, batch.position_ids, batch.cu_seqlens)
        total, count = masked_loss(logits, batch.labels)
        (total / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    names = list(batches)
    for j in range(args.warmup):
        for k in names:
            step(batches[k][j % len(batches[k])])
    times: dict[str, list[list[float]]] = {k: [[] for _ in v] for k, v in batches.items()}
    for _ in range(args.rounds):
        for j in range(max(map(len, batches.values()))):
            for k in names[j % 3 :] + names[: j % 3]:  # rotate so no layout always runs first
                if j < len(batches[k]):
                    times[k][j].append(step(batches[k][j]))
    return {k: [statistics.median(t) for t in v] for k, v in times.items()}


def run_mix(name: str, data: list[Example], args) -> dict[str, dict[str, float]]:
    packs = offline_packs([Cost(len(ex)) for ex in data], PackBudget(args.max_tokens), args.seed, window=len(data))
    packs = [[data[i] for i in p] for p in packs]
    np.random.default_rng(args.seed).shuffle(packs)  # a DataLoader shuffles them (FFD lists them longest first)
    per_step = max(1, round(len(data) / len(packs)))  # padded layouts see as many samples per step as a pack
    full = collate(layouts(data, packs, per_step, args.seed), args.max_tokens)
    # Timing runs on the samples of the first `args.packs` packs, laid out all three ways: every layout trains
    # on exactly the same samples, so the ratios carry no sampling noise from the mix.
    timed_packs = packs[: args.packs]
    timed = collate(layouts([ex for p in timed_packs for ex in p], timed_packs, per_step, args.seed), args.max_tokens)
    seconds = time_steps(timed, args)
    results = {}
    for k, batches in full.items():
        tokens = [real(b) for b in timed[k]]
        results[k] = {
            "pad": 1 - sum(map(real, batches)) / sum(b.input_ids.numel() for b in batches),
            "samples": sum(len(b.sample_ids) for b in batches) / len(batches),
            "steps": len(timed[k]),
            "median": statistics.median(n / t for n, t in zip(tokens, seconds[k])),
            "rate": sum(tokens) / sum(seconds[k]),
        }
    for r in results.values():
        r["speedup"] = r["rate"] / results["padded"]["rate"]
    groups = layouts(data, packs, per_step, args.seed)
    results["lengths"] = {k: [[len(ex) for ex in g] for g in v] for k, v in groups.items()}
    print(f"{name}: {len(data)} samples, mean {np.mean([len(x) for x in data]):.0f} tokens; timed on "
          f"{sum(map(len, timed_packs))} of them", file=sys.stderr)
    return results


def length_layouts(lengths: list[int], max_tokens: int, seed: int) -> dict[str, list[list[int]]]:
    """The three layouts of samples known only by length (a range stands in for each sample)."""
    items = [range(n) for n in lengths]
    packs = offline_packs([Cost(n) for n in lengths], PackBudget(max_tokens), seed, window=len(lengths))
    per_step = max(1, round(len(lengths) / len(packs)))
    groups = layouts(items, [[items[i] for i in p] for p in packs], per_step, seed)
    return {k: [[len(x) for x in g] for g in v] for k, v in groups.items()}


def flop_table(table: dict, lengths: dict[str, dict[str, list[list[int]]]], args) -> None:
    """Predicted packed and grouped speedups over padded, per mix and decoder shape, beside the measured one."""
    tiny, real = Shape.of("tiny-qwen3"), Shape.of("qwen3-vl-8b")
    tail = long_tailed(args.long_samples, np.random.default_rng(args.seed), cap=args.long_tokens)
    rows = [(name, args.max_tokens, groups, table[name]["packed"]["speedup"]) for name, groups in lengths.items()]
    rows.append(("long-tailed", args.long_tokens, length_layouts(tail, args.long_tokens, args.seed), None))
    print(f"\nFLOP model (long-tailed mix: {len(tail)} samples, median {np.median(tail):.0f}, "
          f"p99 {np.percentile(tail, 99):.0f} tokens; Valley3-8B = {real.name}'s text tower: {real.layers} layers, "
          f"hidden {real.hidden}, MLP {real.intermediate}, {real.heads}/{real.kv_heads} heads of {real.head_dim}, "
          f"vocab {real.vocab})")
    print("| mix | pack tokens | decoder | predicted packed / padded | predicted grouped / padded | measured packed "
          "/ padded |")
    print("|---|---:|---|---:|---:|---:|")
    for name, width, groups, measured in rows:
        for shape in (tiny, real):
            predicted = speedups(shape, groups, width)
            seen = f"{measured:.2f}x" if measured is not None and shape is tiny else "-"
            print(f"| {name} | {width} | {shape.name} | {predicted['packed']:.2f}x | {predicted['grouped']:.2f}x "
                  f"| {seen} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=ABOUT, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1500, help="samples per mix (padding statistics use all)")
    parser.add_argument("--packs", type=int, default=32, help="packs whose samples are timed (>= 20 steps each)")
    parser.add_argument("--rounds", type=int, default=3, help="times each step is run; its median time is kept")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per layout first")
    parser.add_argument("--max-tokens", type=int, default=2048, help="pack length")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--long-tokens", type=int, default=8192, help="pack length of the long-tailed mix (FLOP model)")
    parser.add_argument("--long-samples", type=int, default=10000, help="samples of the long-tailed mix")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    mixes = {"bimodal": examples(bimodal(args.samples, rng), rng), "control": examples([512] * args.samples, rng)}
    table = {name: run_mix(name, data, args) for name, data in mixes.items()}
    lengths = {name: results.pop("lengths") for name, results in table.items()}

    print("| mix | layout | pad fraction | samples / step | timed steps | median step tokens/s | real tokens/s "
          "| vs padded |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, results in table.items():
        for k, r in results.items():
            print(f"| {name} | {k} | {r['pad']:.1%} | {r['samples']:.2f} | {r['steps']} | {r['median']:,.0f} "
                  f"| {r['rate']:,.0f} | {r['speedup']:.2f}x |")
    flop_table(table, lengths, args)
    lo, hi = GOALS["control"]
    checks = {
        f"bimodal packed padding <= {GOALS['pad']:.0%}": table["bimodal"]["packed"]["pad"] <= GOALS["pad"],
        f"control packed padding <= {GOALS['pad']:.0%}": table["control"]["packed"]["pad"] <= GOALS["pad"],
        f"bimodal packed / padded >= {GOALS['bimodal']}x": table["bimodal"]["packed"]["speedup"] >= GOALS["bimodal"],
        f"control packed / padded in {lo}-{hi}x": lo <= table["control"]["packed"]["speedup"] <= hi,
    }
    for goal, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {goal}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
