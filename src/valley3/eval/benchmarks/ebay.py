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
  predicted fields absent from the reference (``hallucination_rate``).
- item_intelligence: a compliance JSON over several images; F1/precision/recall as dae, plus the shares of
  predicted fields a ``judge`` finds verifiable-correct / verifiable-incorrect / unverifiable (the default
  rule judge compares with the reference; a local model or an OpenAI-compatible endpoint can stand in).
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
from valley3.eval.benchmarks.judge import VERDICTS, Judge, JudgeShares, RuleJudge
from valley3.eval.metrics import (
    ClassificationAccuracy,
    JSONAttributeF1,
    StringMatch,
    attribute_counts,
    extract_answer_text,
    extract_json,
    flatten_json,
    match_answer,
    normalize_text,
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
        **kwargs: the common benchmark arguments (name, limit, max_new_tokens, system_prompt, media_root,
            max_images).
    """

    suite = "ebay"

    def __init__(self, path: str, aspect_subtasks: list[str] | None = None, judge: Judge | None = None, **kwargs: Any):
        kwargs.setdefault("max_new_tokens", 96)
        super().__init__(path, **kwargs)
        self.aspect_subtasks = list(aspect_subtasks or ASPECT_SUBTASKS)
        self.judge = judge or RuleJudge()
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

    def score(self, item: EvalItem, prediction: str) -> tuple[float, str | None]:
        task = item.meta["task"]
        if task == "aspect":
            ok, reason = match_answer(prediction, item.target)
            return float(ok), reason
        if task == "deep_fashion":
            got = extract_answer_text(prediction)
            return float(got.ok and normalize_text(got.value) == normalize_text(item.target)), got.reason
        got = extract_json(prediction)
        counts = attribute_counts(got.value if isinstance(got.value, dict) else None, item.target)
        total = counts["pred"] + counts["ref"]
        return (2 * counts["tp"] / total if total else 1.0), got.reason

    def metrics(self) -> dict[str, Metric]:
        tasks = {i.meta["task"] for i in self.items}
        metrics: dict[str, Metric] = {}
        if "aspect" in tasks:
            metrics["aspect"] = StringMatch(self.aspect_subtasks)
        if "deep_fashion" in tasks:
            metrics["deep_fashion"] = ClassificationAccuracy(self.classes)
        if "dae" in tasks:
            metrics["dae"] = JSONAttributeF1()
        if "item_intelligence" in tasks:
            metrics["item_intelligence"], metrics["judge"] = JSONAttributeF1(), JudgeShares()
        return metrics

    def update(self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], preds: Sequence[str]) -> None:
        by_task: dict[str, list[tuple[EvalItem, str]]] = defaultdict(list)
        for item, pred in zip(items, preds):
            by_task[item.meta["task"]].append((item, pred))
        for task, pairs in by_task.items():
            its, ps = [i for i, _ in pairs], [p for _, p in pairs]
            if task == "aspect":
                metrics[task].update(ps, [i.target for i in its], [i.meta["bucket"] for i in its])
            elif task == "deep_fashion":
                metrics[task].update(ps, [i.target for i in its], [i.meta["attribute"] for i in its])
            else:
                metrics[task].update(ps, [i.target for i in its])
            if task == "item_intelligence":
                for item, pred in pairs:
                    got = extract_json(pred)
                    fields = flatten_json(got.value) if got.ok and isinstance(got.value, dict) else []
                    metrics["judge"].update(self.judge.judge(fields, item.target, item.prompt))

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
                    details |= {v: results["judge"][v] for v in VERDICTS} | {
                        "judged_fields": results["judge"]["fields"]
                    }
                rows.append(self.row(task, "f1", out["f1"], out["count"], details))
        return rows
