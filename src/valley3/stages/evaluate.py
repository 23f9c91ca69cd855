"""EvalStage: `valley3 test` over benchmark suites: generate, score with torchmetrics, write the results table."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch import nn

from valley3.data.batch import EvalBatch
from valley3.eval.benchmarks import Benchmark
from valley3.eval.datamodule import BenchmarkDataModule
from valley3.eval.report import ResultRow, attach_counts, markdown, write_results
from valley3.models.omni import OmniModel
from valley3.stages.base import OmniStage
from valley3.stages.sharding import gather_records


class EvalStage(OmniStage):
    """Runs benchmark suites on a checkpoint: generates every prompt's answer, scores it with the suite's metrics.

    Use with ``valley3.eval.BenchmarkDataModule`` and ``valley3 test --ckpt_path``. Metrics are
    torchmetrics, so totals are summed over ranks; rank 0 prints the markdown table and writes
    ``results.{md,json,csv}`` and ``predictions.jsonl`` (one line per sample: id, sub-task, prompt,
    prediction, reference, score, malformed reason) into ``out_dir``.

    Args:
        model: the network; its weights come from ``--ckpt_path`` (or ``init_from``).
        max_len: longest prompt in tokens; a longer one is skipped and counted in the table.
        init_from: a checkpoint (Lightning .ckpt or .safetensors) whose weights initialise the model.
        system_prompt: system turn of prompts whose benchmark sets none.
        max_new_tokens: generation budget of benchmarks that set none.
        out_dir: folder of the results (default: the logger's run folder, else the trainer's root dir).
        max_tiles: dynamic tiling of single images, as the model was trained (see `OmniStage`).
        video: video sampling as `VideoSpec` keywords, as the model was trained (see `OmniStage`).
    """

    def __init__(
        self,
        model: OmniModel,
        max_len: int | None = 4096,
        init_from: str | None = None,
        system_prompt: str = "You are a helpful assistant.",
        max_new_tokens: int = 64,
        out_dir: str | None = None,
        max_tiles: int = 1,
        video: dict[str, Any] | None = None,
    ):
        super().__init__(
            model,
            default_lr=0.0,
            max_len=max_len,
            init_from=init_from,
            system_prompt=system_prompt,
            max_new_tokens=max_new_tokens,
            max_tiles=max_tiles,
            video=video,
        )
        self.out_dir = out_dir
        self.benchmarks: list[Benchmark] = []
        self.benchmark_metrics = nn.ModuleDict()
        self.results: list[ResultRow] = []
        self.output_paths: dict[str, Path] = {}
        self._records: list[tuple[int, int, dict[str, Any]]] = []  # (benchmark position, item index, record)
        self._start = time.perf_counter()

    def setup(self, stage: str) -> None:
        super().setup(stage)
        datamodule = getattr(self.trainer, "datamodule", None)
        if not isinstance(datamodule, BenchmarkDataModule):
            raise TypeError(f"EvalStage needs data: valley3.eval.BenchmarkDataModule, got {type(datamodule).__name__}")
        self.benchmarks = datamodule.benchmarks
        # Built here, before Lightning moves the module to its device, so metric states follow it.
        self.benchmark_metrics = nn.ModuleDict({b.name: nn.ModuleDict(b.metrics()) for b in self.benchmarks})

    def on_test_epoch_start(self) -> None:
        self._records, self._start = [], time.perf_counter()
        for metrics in self.benchmark_metrics.values():
            for metric in metrics.values():
                metric.reset()

    def test_step(self, batch: EvalBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        position = dataloader_idx
        benchmark = self.benchmarks[position]
        items = benchmark.items
        for index, reason in batch.eval_skipped:
            self._records.append((position, index, benchmark.record(items[index], None, skipped=reason)))
        if batch.empty:
            return
        budget = benchmark.max_new_tokens or self.hparams.max_new_tokens
        preds = self.generate_text(batch, max_new_tokens=budget)
        rows = [(index, pred) for index, real, pred in zip(batch.eval_index, batch.eval_real, preds) if real]
        if rows:  # one scoring per output feeds both the metrics and predictions.jsonl
            metrics = self.benchmark_metrics[benchmark.name]
            lines = benchmark.evaluate(metrics, [items[i] for i, _ in rows], [p for _, p in rows])
            self._records += [(position, i, line) for (i, _), line in zip(rows, lines)]

    def on_test_epoch_end(self) -> None:
        rows = []
        for benchmark in self.benchmarks:  # compute() syncs each metric's states over ranks
            results = {key: metric.compute() for key, metric in self.benchmark_metrics[benchmark.name].items()}
            rows += benchmark.rows(results)
        records = [r for _, _, r in sorted(gather_records(self._records), key=lambda t: (t[0], t[1]))]
        attach_counts(rows, records)
        self.results = rows
        out_dir = self.out_dir or self.trainer.log_dir or self.trainer.default_root_dir  # log_dir: a collective
        if not self.trainer.is_global_zero:
            return
        meta = {
            "ckpt_path": self.trainer.ckpt_path,
            "world_size": self.trainer.world_size,
            "wall_s": round(time.perf_counter() - self._start, 2),
            "samples": len(records),
            "benchmarks": {b.name: {"path": b.path, "prompts": len(b.items)} for b in self.benchmarks},
        }
        self.output_paths = write_results(rows, records, out_dir, meta)
        print(f"\n{markdown(rows)}\n\nscores x100; results and predictions in {Path(out_dir).resolve()}", flush=True)
        if self.logger is not None:
            self.logger.log_metrics({f"test/{r.benchmark}/{r.subtask}/{r.metric}": r.score for r in rows})
