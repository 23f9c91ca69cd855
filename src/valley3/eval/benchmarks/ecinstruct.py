"""ECInstruct (eCeLLM): ten text-only e-commerce instruction tasks, each with its own per-sample score.

JSONL, one instance per line, as ECInstruct ships them (``id`` added)::

    {"id": "e1", "task": "Sentiment_Analysis", "instruction": "Identify the sentiment of the review.",
     "input": "Great shoes, they fit perfectly.", "options": ["positive", "neutral", "negative"],
     "output": "positive"}
    {"id": "e2", "task": "Attribute_Value_Extraction", "instruction": "Extract the attributes as JSON.",
     "input": "Acme red canvas shoe, size 42", "output": {"brand": "Acme", "colour": "red"}}

- ``instruction`` and ``input`` form the prompt (``input`` may be empty); ``options`` (optional) are listed
  after it, one per line; ``output`` is the reference (a string, a list of accepted strings, or an object).
- the score of a task comes from ``scoring`` (task -> ``accuracy`` | ``attribute_f1`` | ``recall@1`` |
  ``rouge_l``), defaults below; unlisted tasks use ``accuracy``: normalised match with the output, where a
  letter output also accepts the answer's option letter. ``attribute_f1`` is the F1 of the answer's JSON
  key/value pairs, ``recall@1`` the hit of the first ranked id, ``rouge_l`` pycocoevalcap's ROUGE-L.

Sub-tasks are the tasks of the data in order of first appearance unless ``subtasks`` names them.
"""

from __future__ import annotations

from typing import Any

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.eval.metrics import (
    attribute_counts,
    extract_answer_text,
    extract_json,
    match_answer,
    parse_ranking,
    recall_at_k,
    simple_tokenize,
)

ECINSTRUCT_SCORING = {
    "Answer_Generation": "rouge_l",
    "Attribute_Value_Extraction": "attribute_f1",
    "Sequential_Recommendation": "recall@1",
}
SCORERS = {"accuracy": "acc", "attribute_f1": "f1", "recall@1": "recall@1", "rouge_l": "rouge_l"}  # -> table name


def _rouge_l(prediction: str, references: list[str]) -> float:
    from pycocoevalcap.rouge.rouge import Rouge

    # pycocoevalcap splits on spaces, so both sides are tokenized first, as its caption pipeline does.
    return float(Rouge().calc_score([simple_tokenize(prediction)], [simple_tokenize(r) for r in references]))


class ECInstruct(Benchmark):
    """ECInstruct: accuracy, attribute F1, Recall@1 or ROUGE-L per task, macro and sample-weighted overall.

    Args:
        path: the JSONL file (format in the module docstring).
        scoring: task -> scorer (accuracy, attribute_f1, recall@1, rouge_l), over the defaults.
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "ecinstruct"

    def __init__(self, path: str, scoring: dict[str, str] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("max_new_tokens", 64)
        super().__init__(path, **kwargs)
        self.scoring = {**ECINSTRUCT_SCORING, **(scoring or {})}
        unknown = {v for v in self.scoring.values() if v not in SCORERS}
        if unknown:
            raise ValueError(f"unknown scorer(s) {sorted(unknown)}; expected among {list(SCORERS)}")

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        task = self.check_subtask(record.get("task"), source)
        parts = [self.require(record, "instruction", source), str(record.get("input") or "")]
        options = record.get("options")
        if options:
            parts.append("\n".join(str(o) for o in options))
        output = self.require(record, "output", source, (str, list, dict))
        if self.scoring.get(task) == "attribute_f1" and isinstance(output, str):
            raise SchemaError(f"{source}: task {task} is scored by attribute F1, so 'output' must be a JSON object")
        reference = output if isinstance(output, (str, dict)) else str(output[0])
        sample = self.make_sample(uid, record, source, "\n".join(p for p in parts if p), reference)
        return [EvalItem(uid, task, sample, output, {"scorer": self.scoring.get(task, "accuracy")})]

    def score(self, item: EvalItem, prediction: str) -> tuple[float, str | None]:
        scorer, target = item.meta["scorer"], item.target
        if scorer == "attribute_f1":
            got = extract_json(prediction)
            counts = attribute_counts(got.value if isinstance(got.value, dict) else None, target)
            total = counts["pred"] + counts["ref"]
            return (2 * counts["tp"] / total if total else 1.0), got.reason
        if scorer == "recall@1":
            ranking = parse_ranking(prediction)
            return recall_at_k(ranking.value or [], target, k=1), ranking.reason
        if scorer == "rouge_l":
            got = extract_answer_text(prediction)
            refs = [target] if isinstance(target, str) else [str(t) for t in target]
            return (_rouge_l(got.value, refs) if got.ok else 0.0), got.reason
        targets = [str(t) for t in target] if isinstance(target, list) else str(target)
        ok, reason = match_answer(prediction, targets)
        return float(ok), reason

    def metric_name(self, subtask: str) -> str:
        return SCORERS[self.scoring.get(subtask, "accuracy")]
