"""eComMMMU (EcomMMMU, Ling et al.; the eBay study's benchmark): eight multimodal shopping sub-tasks.

JSONL, one question per line::

    {"id": "m1", "subtask": "CP", "images": ["img/m1_0.png", "img/m1_1.png"],
     "question": "The user bought <image>. Would they buy <image> next? Answer yes or no.", "answer": "yes"}
    {"id": "m2", "subtask": "MPC", "question": "How relevant is the item to the query 'red shoe'?",
     "images": ["img/m2.png"], "options": ["exact", "substitute", "complement", "irrelevant"], "answer": "B"}
    {"id": "m3", "subtask": "SR", "question": "Which listing is the item in the image?",
     "images": ["img/m3.png"], "candidates": ["item_3", "item_7", "item_9"], "answer": "item_7"}

- ``subtask``: AP (answerability prediction), BQA (binary question answering), CP (click-through prediction:
  would the user buy the candidate given the purchase history), SR (sequential recommendation), MPC
  (multi-class product classification), PSI (product substitute identification), SA (sentiment analysis),
  PRP (product relation prediction), or the benchmark's ``subtasks``.
- with ``options``: ``answer`` is the correct option as a letter, a 0-based index or its text, and the output
  must name exactly that option (its letter or its text, as VLMEvalKit's ``can_infer``); without: the
  expected short answer (``yes``/``no`` for AP, CP, PSI), or a list of accepted answers, which the whole
  answer must equal after normalisation.
- SR (the ``recall_subtasks``): ``candidates`` are listed in the prompt and the model ranks them;
  ``answer`` is the relevant id (or ids) and the score is Recall@1 of the ranking.
- images: at most ``max_images`` (10, as the study) are kept per question; the rest are dropped.

``overall`` is the average of the sub-task scores weighted by their sample counts (the study's number);
``macro`` is the unweighted mean. Table and ``predictions.jsonl`` come from the same per-sample score.
The reference scorer (ninglab/EcomMMMU ``evaluate.py``) counts an answer outside the task's labels as wrong,
as here, but reads the answer more leniently: README, "Evaluation", lists where.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem, answer_letter, options_block
from valley3.eval.benchmarks.scored import Scored
from valley3.eval.metrics import extract_letter, match_answer, parse_ranking, recall_at_k
from valley3.eval.report import OVERALL, ResultRow

ECOMMMMU_TASK_NAMES = {
    "AP": "answerability prediction",
    "BQA": "binary question answering",
    "CP": "click-through prediction",
    "SR": "sequential recommendation",
    "MPC": "multi-class product classification",
    "PSI": "product substitute identification",
    "SA": "sentiment analysis",
    "PRP": "product relation prediction",
}
ECOMMMMU_SUBTASKS: tuple[str, ...] = tuple(ECOMMMMU_TASK_NAMES)


class EComMMMU(Benchmark):
    """eComMMMU: eight sub-tasks, Recall@1 on SR and accuracy elsewhere, averaged weighted by samples.

    Args:
        path: the JSONL file (format in the module docstring).
        recall_subtasks: the sub-tasks scored by Recall@1 of a ranking over ``candidates``.
        choice_instruction: the line after the options of a multiple-choice question.
        text_instruction: the line after an open question.
        rank_instruction: the line after the candidates of a ranking question.
        max_images: images kept per question (10 in the study).
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root).
    """

    suite = "ecommmmu"
    default_subtasks = ECOMMMMU_SUBTASKS

    def __init__(
        self,
        path: str,
        recall_subtasks: list[str] | None = None,
        choice_instruction: str = "Answer with the option's letter from the given choices directly.",
        text_instruction: str = "Answer with a word or a short phrase.",
        rank_instruction: str = (
            "Rank the candidates from most to least relevant; answer with their ids, comma-separated."
        ),
        max_images: int | None = 10,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_new_tokens", 32)
        super().__init__(path, max_images=max_images, **kwargs)
        self.recall_subtasks = list(recall_subtasks) if recall_subtasks is not None else ["SR"]
        self.instructions = {"choice": choice_instruction, "text": text_instruction, "rank": rank_instruction}

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        subtask = self.check_subtask(record.get("subtask"), source)
        question = self.require(record, "question", source)
        if subtask in self.recall_subtasks:
            candidates = [str(c) for c in self.require(record, "candidates", source, list)]
            target = self.require(record, "answer", source, (str, int, list))
            gold = [str(g) for g in target] if isinstance(target, list) else [str(target)]
            if not gold or set(gold) - set(candidates):
                raise SchemaError(f"{source}: answer {target!r} is not among the candidates")
            prompt = f"{question}\nCandidates: {', '.join(candidates)}\n{self.instructions['rank']}"
            target, reference = gold, ", ".join(gold)
        elif record.get("options") is not None:
            options = [str(o) for o in self.require(record, "options", source, list)]
            target = reference = answer_letter(record.get("answer"), options, source)
            prompt = f"{question}\n{options_block(options)}\n{self.instructions['choice']}"
        else:
            target = self.require(record, "answer", source, (str, list))
            reference = target if isinstance(target, str) else str(target[0])
            prompt = f"{question}\n{self.instructions['text']}"
        sample = self.make_sample(uid, record, source, prompt, reference)
        meta = {"options": [str(o) for o in record["options"]]} if record.get("options") is not None else {}
        return [EvalItem(uid, subtask, sample, target, meta if subtask not in self.recall_subtasks else {})]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        if item.subtask in self.recall_subtasks:
            ranking = parse_ranking(prediction)
            return Scored(recall_at_k(ranking.value or [], item.target, k=1), ranking.reason, ranking.value)
        if "options" in item.meta:
            got = extract_letter(prediction, options=item.meta["options"])
            return Scored(float(got.ok and got.value == item.target), got.reason, got.value)
        ok, reason = match_answer(prediction, item.target)
        return Scored(float(ok), reason)

    def rows(self, results: Mapping[str, Mapping[str, Tensor]]) -> list[ResultRow]:
        out = results["score"]
        rows = [
            self.row(s, "recall@1" if s in self.recall_subtasks else "acc", out[f"score/{s}"], out[f"count/{s}"])
            for s in self.present_subtasks
        ]
        return rows + [self.row(OVERALL, "weighted_score", out["score"], out["count"], {"macro": out["macro"]})]
