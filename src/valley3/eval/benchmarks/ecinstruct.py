"""ECInstruct (eCeLLM): ten text-only e-commerce instruction tasks, each with its own per-sample score.

JSONL, one instance per line, as ECInstruct ships them (``id`` added)::

    {"id": "e1", "task": "Sentiment_Analysis", "instruction": "Identify the sentiment of the review.",
     "input": "Great shoes, they fit perfectly.", "options": ["A: positive", "B: neutral", "C: negative"],
     "output": "A"}
    {"id": "e2", "task": "Attribute_Value_Extraction", "instruction": "Extract the attributes as JSON.",
     "input": "Acme red canvas shoe, size 42",
     "output": [{"attribute": "brand", "value": "Acme", "source": "title"}]}

- ``instruction`` and ``input`` form the prompt (``input`` may be empty); ``options`` (optional) are listed
  after it, one per line; ``output`` is the reference (a string, a list of accepted strings, an object, or
  for attribute F1 a list of attribute/value/source triples, also as the JSON string ECInstruct ships).
- the score of a task comes from ``scoring`` (task -> ``accuracy`` | ``attribute_f1`` | ``recall@1`` |
  ``rouge_l``), defaults below; unlisted tasks use ``accuracy``: a letter ``output`` with ``options`` needs
  the answer to name exactly that option (its letter or its text, VLMEvalKit's ``can_infer``), any other
  ``output`` a normalised match. ``attribute_f1`` is the micro F1 over the task's samples, as eCeLLM reports
  it: triples match whole on attribute, value and source (exact values), an object's key/value pairs after
  normalisation; ``recall@1`` is the hit of the first ranked id, ``rouge_l`` pycocoevalcap's ROUGE-L.

Sub-tasks are the tasks of the data in order of first appearance unless ``subtasks`` names them. Where the
scores differ from eCeLLM's ``evaluate.py`` (invalid answers count as wrong here, never dropped) README,
"Evaluation", lists.
"""

from __future__ import annotations

from typing import Any

import json
import re

from torchmetrics import Metric

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import LETTERS, Benchmark, EvalItem
from valley3.eval.benchmarks.scored import SampleScore, Scored, scored_match
from valley3.eval.metrics import (
    extract_answer_text,
    extract_letter,
    parse_ranking,
    recall_at_k,
    sample_f1,
    score_json,
    simple_tokenize,
)

ECINSTRUCT_SCORING = {
    "Answer_Generation": "rouge_l",
    "Attribute_Value_Extraction": "attribute_f1",
    "Sequential_Recommendation": "recall@1",
}
SCORERS = {"accuracy": "acc", "attribute_f1": "f1", "recall@1": "recall@1", "rouge_l": "rouge_l"}  # -> table name
TRIPLE = ("attribute", "value", "source")  # ECInstruct's attribute-value extraction items, matched whole
_LETTERED = re.compile(r"^\(?([A-Z])\)?\s*[:.)]\s*")  # "A: positive", "(B) negative"


def option_texts(options: list[Any]) -> list[str]:
    """The option texts without their own "A:" / "(B)" labels (a label must be the option's own letter)."""
    out = []
    for k, option in enumerate(map(str, options)):
        m = _LETTERED.match(option)
        out.append(option[m.end() :] if m and m.group(1) == LETTERS[k] else option)
    return out


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
        scorer = self.scoring.get(task, "accuracy")
        if scorer == "attribute_f1":
            output = _attribute_reference(output, source)
        reference = output if isinstance(output, (str, dict)) or scorer == "attribute_f1" else str(output[0])
        sample = self.make_sample(uid, record, source, "\n".join(p for p in parts if p), reference)
        meta: dict[str, Any] = {"scorer": scorer}
        letter = _output_letter(output, len(options)) if options and isinstance(output, str) else None
        if letter is not None:  # "A" or "A: positive": the answer must name option A
            meta |= {"options": option_texts(options), "letter": letter}
        return [EvalItem(uid, task, sample, output, meta)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        scorer, target = item.meta["scorer"], item.target
        if scorer == "attribute_f1":
            tuple_keys = TRIPLE if isinstance(target, list) else None
            counts, reason, value = score_json(prediction, target, tuple_keys=tuple_keys)
            extra = {"counts": {k: counts[k] for k in ("tp", "pred", "ref")}}
            return Scored(sample_f1(counts, reason), reason, value, extra)
        if "letter" in item.meta:  # lettered options (a lettered recommendation too: its Recall@1 is this)
            got = extract_letter(prediction, options=item.meta["options"])
            return Scored(float(got.ok and got.value == item.meta["letter"]), got.reason, got.value)
        if scorer == "recall@1":
            ranking = parse_ranking(prediction)
            return Scored(recall_at_k(ranking.value or [], target, k=1), ranking.reason, ranking.value)
        if scorer == "rouge_l":
            got = extract_answer_text(prediction)
            refs = [target] if isinstance(target, str) else [str(t) for t in target]
            return Scored(_rouge_l(got.value, refs) if got.ok else 0.0, got.reason, got.value)
        return scored_match(prediction, [str(t) for t in target] if isinstance(target, list) else str(target))

    def metrics(self) -> dict[str, Metric]:
        f1 = [s for s in self.subtasks if self.scoring.get(s) == "attribute_f1"]
        return {"score": SampleScore(self.subtasks, f1_subtasks=f1)}

    def metric_name(self, subtask: str) -> str:
        return SCORERS[self.scoring.get(subtask, "accuracy")]


def _output_letter(output: str, n: int) -> str | None:
    text = output.strip()
    letter = text if len(text) == 1 else (m.group(1) if (m := _LETTERED.match(text)) else None)
    return letter if letter is not None and letter in LETTERS[:n] else None


def _attribute_reference(output: Any, source: str) -> Any:
    """An attribute-F1 reference: an object, or a list of attribute/value/source triples (a JSON string of
    either, as ECInstruct ships them, is parsed)."""
    if isinstance(output, str):
        try:
            output = json.loads(output)
        except json.JSONDecodeError:
            output = None
    if isinstance(output, list) and all(isinstance(t, dict) and all(k in t for k in TRIPLE) for t in output):
        return output
    if isinstance(output, dict):
        return output
    raise SchemaError(
        f"{source}: an attribute-F1 'output' must be a JSON object or a list of {list(TRIPLE)} objects"
    )
