"""eBay study tasks: aspect prediction, deep fashion understanding, dynamic attribute extraction, item intelligence.

JSONL, one item per line; ``task`` picks the kind, media as in every suite (paths relative to the file)::

    {"id": "a1", "task": "aspect", "subtask": "fashion_title_category", "images": ["i/a1.png"],
     "aspect": "Brand", "title": "Acme red canvas sneaker", "category": "Shoes", "answer": ["Acme", "ACME"]}
    {"id": "f1", "task": "deep_fashion", "images": ["i/f1.png"], "attribute": "sleeve",
     "classes": ["long", "short", "sleeveless"], "answer": "short"}
    {"id": "d1", "task": "dae", "images": ["i/d1.png"], "answer": {"brand": "Acme", "colour": "red"}}
    {"id": "m1", "task": "item_intelligence", "images": ["i/m1_0.png", "i/m1_1.png"],
     "answer": {"brand": "Acme", "logo_visible": true, "condition": "new"}}

- aspect: ``subtask`` general | fashion | fashion_title_category (``aspect_subtasks``); ``title`` and
  ``category`` are shown when given; ``answer``: the value or a list of accepted values (normalised match).
- deep_fashion: the model picks one of ``classes`` for ``attribute``; per-attribute accuracy and their mean.
- dae: free-schema JSON of the visible attributes; micro key/value precision, recall, F1 and the share of
  predicted fields absent from the reference (``hallucination_rate``). An output wrapped as
  ``{"thinking process": ..., "answer": {...}}`` is scored on its ``answer_field``; a truncated object is
  malformed (never replaced by an object inside it); an object inside a list is matched whole; a claim
  repeated counts once. An empty reference adds the output's claims to the precision's denominator.
- item_intelligence: a compliance JSON over several images; F1/precision/recall as dae, plus the shares of
  outputs a ``judge`` finds verifiable-correct / verifiable-incorrect / unverifiable, over every output
  (each output weighs 1, split over its fields; ``no_claims`` and ``malformed_share`` take the rest), from the
  default rule judge (compares with the reference) or a local model or OpenAI-compatible endpoint.
- ``question`` (optional) replaces the task's default request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torchmetrics import Metric

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.eval.benchmarks.scored import Scored, scored_match
from valley3.eval.benchmarks.judge import SHARES, Judge, JudgeShares, RuleJudge
from valley3.eval.metrics import (
    ClassificationAccuracy,
    JSONAttributeF1,
    StringMatch,
    classify_answer,
    flatten_json,
    normalize_text,
    sample_f1,
    score_json,
)
from valley3.eval.report import ResultRow

ASPECT_SUBTASKS = ("general", "fashion", "fashion_title_category")
TASKS = ("aspect", "deep_fashion", "dae", "item_intelligence")
_REQUESTS = {
    "aspect": "What is the {aspect} of this item? Answer with the value only.",
    "deep_fashion": "What is the {attribute} of this item? Choose one of: {classes}. Answer with the class only.",
    "dae": "List the attributes of this item that the image shows, as a JSON object of attribute names and values.",
    "item_intelligence": "Read the listing images and report the item's compliance-relevant facts as a JSON "
    "object of field names and values.",
}


class EBay(Benchmark):
    """eBay tasks: aspect prediction, deep fashion, dynamic attribute extraction, multi-image item intelligence.

    Args:
        path: the JSONL file (format in the module docstring).
        aspect_subtasks: the aspect prediction sub-tasks.
        judge: labels item-intelligence fields (default :class:`RuleJudge`, which needs no model).
        answer_field: the JSON field a wrapped answer sits in (``None``: score the whole object).
        **kwargs: the common benchmark arguments (name, limit, max_new_tokens, system_prompt, media_root,
            max_images).
    """

    suite = "ebay"

    def __init__(
        self,
        path: str,
        aspect_subtasks: list[str] | None = None,
        judge: Judge | None = None,
        answer_field: str | None = "answer",
        **kwargs: Any,
    ):
        kwargs.setdefault("max_new_tokens", 96)
        super().__init__(path, **kwargs)
        self.aspect_subtasks = list(aspect_subtasks or ASPECT_SUBTASKS)
        self.judge, self.answer_field = judge or RuleJudge(), answer_field
        self.classes: dict[str, list[str]] = {}

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        task = self.require(record, "task", source)
        if task not in TASKS:
            raise SchemaError(f"{source}: task {task!r}; expected one of {TASKS}")
        request, subtask, answer = record.get("question"), task, record.get("answer")
        meta: dict[str, Any] = {"task": task}
        if task == "aspect":
            meta["bucket"] = record.get("subtask")
            if meta["bucket"] not in self.aspect_subtasks:
                raise SchemaError(
                    f"{source}: aspect sub-task {meta['bucket']!r}; expected one of {self.aspect_subtasks}"
                )
            subtask = f"aspect/{meta['bucket']}"
            request = request or _REQUESTS[task].format(aspect=self.require(record, "aspect", source))
            context = [f"{k.title()}: {record[k]}" for k in ("title", "category") if record.get(k)]
            request = "\n".join([*context, request])
            if not isinstance(answer, (str, list)) or not answer:
                raise SchemaError(f"{source}: an aspect 'answer' must be a value or a list of accepted values")
        elif task == "deep_fashion":
            attribute, classes = (
                self.require(record, "attribute", source),
                self.require(record, "classes", source, list),
            )
            if normalize_text(answer) not in {normalize_text(c) for c in classes}:
                raise SchemaError(f"{source}: answer {answer!r} is not one of the classes {classes}")
            known = self.classes.setdefault(attribute, [])
            known += [str(c) for c in classes if c not in known]
            meta["attribute"], subtask = attribute, f"deep_fashion/{attribute}"
            request = request or _REQUESTS[task].format(attribute=attribute, classes=", ".join(map(str, classes)))
        else:
            if not isinstance(answer, dict):
                raise SchemaError(f"{source}: a {task} 'answer' must be a JSON object")
            request = request or _REQUESTS[task]
        reference = answer if not isinstance(answer, list) else str(answer[0])
        sample = self.make_sample(uid, record, source, request, reference)
        return [EvalItem(uid, subtask, sample, answer, meta)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        task = item.meta["task"]
        if task == "aspect":
            return scored_match(prediction, item.target)
        if task == "deep_fashion":
            classes = self.classes[item.meta["attribute"]]
            correct, out_of_set, reason, answer = classify_answer(prediction, item.target, classes)
            return Scored(float(correct), reason, answer, {"out_of_set": out_of_set})
        counts, reason, value = score_json(prediction, item.target, self.answer_field)
        extra: dict[str, Any] = {"counts": counts}
        if task == "item_intelligence":
            fields = flatten_json(value) if reason is None else None
            extra["verdicts"] = None if fields is None else self.judge.judge(fields, item.target, item.prompt)
        return Scored(sample_f1(counts, reason), reason, value, extra)

    def metrics(self) -> dict[str, Metric]:
        tasks = {i.meta["task"] for i in self.items}
        metrics: dict[str, Metric] = {}
        if "aspect" in tasks:
            metrics["aspect"] = StringMatch(self.aspect_subtasks)
        if "deep_fashion" in tasks:
            metrics["deep_fashion"] = ClassificationAccuracy(self.classes)
        if "dae" in tasks:
            metrics["dae"] = JSONAttributeF1(self.answer_field)
        if "item_intelligence" in tasks:
            metrics["item_intelligence"], metrics["judge"] = JSONAttributeF1(self.answer_field), JudgeShares()
        return metrics

    def update(self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], scored: Sequence[Scored]) -> None:
        by_task: dict[str, list[tuple[EvalItem, Scored]]] = defaultdict(list)
        for item, s in zip(items, scored):
            by_task[item.meta["task"]].append((item, s))
        for task, pairs in by_task.items():
            its, ss = [i for i, _ in pairs], [s for _, s in pairs]
            reasons = [s.malformed for s in ss]
            correct = [s.score == 1.0 for s in ss]
            if task == "aspect":
                metrics[task].update(subtasks=[i.meta["bucket"] for i in its], correct=correct, reasons=reasons)
            elif task == "deep_fashion":
                out_of_set = [s.extra["out_of_set"] for s in ss]
                attributes = [i.meta["attribute"] for i in its]
                metrics[task].update(attributes=attributes, correct=correct, out_of_set=out_of_set, reasons=reasons)
            else:
                metrics[task].update(counts=[s.extra["counts"] for s in ss], reasons=reasons)
            if task == "item_intelligence":
                metrics["judge"].update([s.extra["verdicts"] for s in ss])

    def rows(self, results: Mapping[str, Mapping[str, Tensor]]) -> list[ResultRow]:
        rows, present = [], set(self.present_subtasks)
        if "aspect" in results:
            out = results["aspect"]
            buckets = [b for b in self.aspect_subtasks if f"aspect/{b}" in present]
            rows += [self.row(f"aspect/{b}", "acc", out[f"acc/{b}"], out[f"count/{b}"]) for b in buckets]
            rows.append(self.row("aspect", "acc", out["acc"], out["count"]))
        if "deep_fashion" in results:
            out = results["deep_fashion"]
            rows += [self.row(f"deep_fashion/{a}", "acc", out[f"acc/{a}"], out[f"count/{a}"]) for a in self.classes]
            details = {"acc_micro": out["acc_micro"], "out_of_set": out["out_of_set"]}
            rows.append(self.row("deep_fashion", "mean_acc", out["acc"], out["count"], details))
        for task in ("dae", "item_intelligence"):
            if task in results:
                out = results[task]
                details = {k: out[k] for k in ("precision", "recall", "hallucination_rate")}
                if task == "item_intelligence":
                    judge = results["judge"]
                    # "malformed_share": the table's own "malformed" column counts outputs, not a share
                    details |= {v if v != "malformed" else "malformed_share": judge[v] for v in SHARES}
                    details["judged_fields"] = judge["fields"]
                rows.append(self.row(task, "f1", out["f1"], out["count"], details))
        return rows
