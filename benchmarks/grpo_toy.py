"""GRPO toy task: a tiny random model learns to answer with one target token under a deterministic rule reward.

    PYTHONPATH=src python benchmarks/grpo_toy.py [--steps 50] [--out curve.json]

The reward is the share of generated tokens that are the target word's token ("red"); a random model scores about
1/1000. GRPOStage trains the tiny Qwen3-shaped decoder (2 layers) on CPU and the script prints the mean reward per
step; a run passes when it starts at <= 0.1 and reaches >= 0.9 within the step budget.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import torch

from valley3.data.batch import PromptBatch
from valley3.data.schema import Sample, Turn
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.rewards import TokenShareReward
from valley3.stages.grpo import GRPOStage


class _Curve(L.Callback):
    """Mean reward, zero-spread share and loss per training step."""

    def __init__(self, stop_at: float | None = None):
        self.rows: list[dict] = []
        self.start, self.stop_at = time.perf_counter(), stop_at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        rewards = outputs.get("rewards") or [0.0]
        row = {"step": outputs["step"] + 1, "reward": sum(rewards) / len(rewards),
               "loss": float(outputs.get("loss", float("nan"))),
               "zero_spread": float(trainer.callback_metrics.get("train/zero_spread_share", float("nan"))),
               "seconds": round(time.perf_counter() - self.start, 1)}
        self.rows.append(row)
        print(f"step {row['step']:3d}  reward {row['reward']:.3f}  zero-spread {row['zero_spread']:.2f}  "
              f"loss {row['loss']:+.4f}  {row['seconds']:6.1f} s", flush=True)
        if self.stop_at is not None and row["reward"] >= self.stop_at:
            trainer.should_stop = True


def prompts(n: int) -> list[Sample]:
    return [Sample(f"p{i}", [Turn("user", f"Describe item {i} in a few words."), Turn("assistant", "red")])
            for i in range(n)]


class _Prompts(torch.utils.data.Dataset):
    def __init__(self, samples: list[Sample], steps: int, per_step: int):
        self.samples, self.length = samples, steps * per_step

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i % len(self.samples)]


def run(steps: int = 50, group_size: int = 16, prompts_per_step: int = 8, max_new_tokens: int = 16,
        lr: float = 1e-2, seed: int = 0, stop_at: float | None = None) -> list[dict]:
    """The curve of a toy run (one row per step); `stop_at` ends it once the mean reward reaches that."""
    torch.manual_seed(seed)
    stage = GRPOStage(OmniModel(HFDecoder("tiny-qwen3")), rewards=[TokenShareReward("red")],
                      sampling={"group_size": group_size, "max_new_tokens": max_new_tokens}, default_lr=lr,
                      max_grad_norm=1.0, seed=seed)
    loader = torch.utils.data.DataLoader(_Prompts(prompts(64), steps, prompts_per_step), batch_size=prompts_per_step,
                                         collate_fn=lambda items: PromptBatch(items, torch.tensor(0)))
    curve = _Curve(stop_at)
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[curve])
    trainer.fit(stage, loader)
    return curve.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the curve as JSON here")
    args = parser.parse_args()
    rows = run(args.steps, args.group_size, args.prompts, args.max_new_tokens, args.lr, args.seed)
    first = next((r["step"] for r in rows if r["reward"] >= 0.9), None)
    print(f"start reward {rows[0]['reward']:.3f}; reward >= 0.9 first at step {first}; {rows[-1]['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
