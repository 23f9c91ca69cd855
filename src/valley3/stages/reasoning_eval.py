"""ReasoningEvalStage: `valley3 test` once per effort level or thinking budget, with s1's Control and Scaling."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from valley3.data.batch import EvalBatch
from valley3.eval.effort_report import SettingResult, markdown, write_reasoning_report
from valley3.eval.report import OVERALL, attach_counts, write_results
from valley3.models.omni import OmniModel
from valley3.policy import Policy
from valley3.reasoning.budget import BudgetForcing
from valley3.reasoning.effort import effort_levels
from valley3.stages.evaluate import EvalStage
from valley3.stages.sharding import gather_records


@dataclass(frozen=True)
class Setting:
    name: str
    effort: str | None
    cap: int | None


class ReasoningEvalStage(EvalStage):
    """Runs every benchmark suite at each effort level (or thinking budget): each suite's score and the thinking
    tokens per setting, in one table and one plot of score against thinking tokens, with s1's Control (share
    of samples within the budget) and Scaling (mean slope of score against thinking).

    Writes ``reasoning.{md,json,png}`` into ``out_dir`` and, per setting, the usual results and predictions
    under ``out_dir/<setting>/`` (each prediction with its thinking tokens and thinking format). Budget forcing
    makes as many generation calls as the rows need, so run it on one device or with DDP, not FSDP.

    Args:
        model: the network; its weights come from ``--ckpt_path`` (or ``init_from``).
        efforts: the effort level set the model was trained with (as `ReasoningSFTStage`'s ``efforts``).
        levels: the effort levels to run, each at its own default budget (default: every level of the set).
        budgets: thinking caps to run instead, each at ``budget_level``: s1's budget sweep.
        budget_level: the effort level of the budget sweep (default: the set's default level).
        extend: suppress the end of thinking this many times (s1's "Wait"), in every setting.
        wait: the text appended when the end of thinking is suppressed.
        temperature: sampling temperature (0: greedy).
        max_new_tokens: tokens per thinking phase without a cap, and per answer when a suite sets none.
        **kwargs: other `EvalStage` arguments (max_len, init_from, system_prompt, out_dir, max_tiles, video).
    """

    def __init__(
        self,
        model: OmniModel,
        efforts: str | dict[str, Any] | None = "release",
        levels: list[str] | None = None,
        budgets: list[int] | None = None,
        budget_level: str | None = None,
        extend: int = 0,
        wait: str = "Wait",
        temperature: float = 0.0,
        max_new_tokens: int = 1024,
        **kwargs: Any,
    ):
        super().__init__(model, max_new_tokens=max_new_tokens, **kwargs)
        self.processor.template.efforts = sets = effort_levels(efforts)
        if budgets:
            level = budget_level or sets.default
            self.settings = [Setting(f"{level}@{b}", level, b) for b in budgets]
        else:
            names = levels or sets.names
            self.settings = [Setting(n, n, sets.level(n).max_thinking_tokens) for n in names]
        for s in self.settings:
            sets.level(s.effort)
        self.extend, self.wait, self.temperature = extend, wait, temperature
        self.setting_metrics = nn.ModuleDict()
        self.reasoning_paths: dict[str, Path] = {}
        self.setting_results: list[SettingResult] = []

    def setup(self, stage: str) -> None:
        super().setup(stage)
        self.setting_metrics = nn.ModuleDict({
            f"s{k}": nn.ModuleDict({b.name: nn.ModuleDict(b.metrics()) for b in self.benchmarks})
            for k in range(len(self.settings))})

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        for per_setting in self.setting_metrics.values():
            for metrics in per_setting.values():
                for metric in metrics.values():
                    metric.reset()

    def test_step(self, batch: EvalBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        benchmark = self.benchmarks[dataloader_idx]
        for k in range(len(self.settings)):
            for index, reason in batch.eval_skipped:
                self._records.append((k, dataloader_idx, index, benchmark.record(benchmark.items[index], None,
                                                                                   skipped=reason)))
        if batch.empty:
            return
        items = [benchmark.items[i] for i in batch.eval_index]
        policy = Policy(self.model, self.processor)
        budget = benchmark.max_new_tokens or self.hparams.max_new_tokens
        for k, setting in enumerate(self.settings):
            prompts = [dataclasses.replace(it.sample, meta={**it.sample.meta, "effort": setting.effort})
                       for it in items]
            forcing = BudgetForcing(setting.cap, self.extend, self.wait, self.hparams.max_new_tokens, budget)
            answers = forcing(policy, prompts, temperature=self.temperature, seed=batch_idx)
            real = [(it, a) for it, a, r in zip(items, answers, batch.eval_real) if r]
            if not real:
                continue
            # One scoring per output feeds both the metrics and the predictions file (Benchmark.evaluate).
            lines = benchmark.evaluate(self.setting_metrics[f"s{k}"][benchmark.name], [it for it, _ in real],
                                       [a.answer for _, a in real])
            indices = [i for i, r in zip(batch.eval_index, batch.eval_real) if r]
            for (it, a), index, line in zip(real, indices, lines):
                extra = {"thinking_tokens": a.thinking_tokens, "thinking_format": a.parsed.error or "ok",
                         "one_block": a.parsed.one_block, "capped": a.capped, "output": a.text}
                self._records.append((k, dataloader_idx, index, line | extra))

    def on_test_epoch_end(self) -> None:
        records = sorted(gather_records(self._records), key=lambda t: t[:3])
        out_dir = Path(self.out_dir or self.trainer.log_dir or self.trainer.default_root_dir)
        results = []
        for k, setting in enumerate(self.settings):
            rows = []
            for benchmark in self.benchmarks:
                metrics = self.setting_metrics[f"s{k}"][benchmark.name]
                rows += benchmark.rows({key: metric.compute() for key, metric in metrics.items()})
            mine = [r for kk, _, _, r in records if kk == k]
            attach_counts(rows, mine)
            scored = [r for r in mine if "thinking_tokens" in r]
            results.append(SettingResult(
                setting.name, setting.effort, setting.cap, [r["thinking_tokens"] for r in scored],
                [r["one_block"] for r in scored], [r["thinking_format"] == "ok" for r in scored],
                {row.benchmark: row.score for row in rows if row.subtask == OVERALL}))
            if self.trainer.is_global_zero:
                write_results(rows, mine, out_dir / setting.name, {"setting": dataclasses.asdict(setting)})
        self.setting_results = results
        if self.trainer.is_global_zero:
            self.reasoning_paths = write_reasoning_report(results, out_dir)
            print(f"\n{markdown(results)}\n\nscores x100; tables and plot in {out_dir.resolve()}", flush=True)
