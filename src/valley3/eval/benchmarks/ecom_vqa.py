"""Ecom-VQA (Valley2): 4-option multiple choice over images, multi-image and video, scored circularly.

JSONL, one question per line::

    {"id": "q1", "subtask": "IU", "question": "What colour is the bag?",
     "options": ["red", "blue", "green", "black"], "answer": "B",
     "images": ["img/q1.png"], "videos": [], "video_frames": [], "audios": []}

- ``subtask``: one of IU, OCR, DS, MIU, PTU, GVU, PEU, AL, VCR (or the benchmark's ``subtasks``).
- ``options``: exactly ``num_options`` option texts; ``answer``: the correct one as a letter, a 0-based
  index or its text.
- media: paths relative to the JSONL file. ``<image>``/``<video>``/``<audio>`` tags in ``question`` place
  them; media without a tag go in front. ``video_frames`` (a list of frame images per video) stands in for
  ``videos`` when the model reads videos as frames.

Each question is asked once per cyclic rotation of its options, the correct option at A, B, C, D in turn
(prompt ids ``<id>#r<k>``); a question counts as right only if every rotation is answered right.
An answer is read as VLMEvalKit's ``can_infer`` reads it (README, "Answer extraction"): it must name exactly
one option, by its letter or by its text; "A or B" is ``ambiguous`` and wrong on every rotation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor
from torchmetrics import Metric

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem, answer_letter, options_block
from valley3.eval.benchmarks.scored import Scored
from valley3.eval.metrics import CircularMCQ, extract_letter, rotate_options
from valley3.eval.report import OVERALL, ResultRow

ECOM_VQA_SUBTASKS = ("IU", "OCR", "DS", "MIU", "PTU", "GVU", "PEU", "AL", "VCR")


class EcomVQA(Benchmark):
    """Valley2 Ecom-VQA: circular 4-option MCQ per sub-task (IU, OCR, DS, MIU, PTU, GVU, PEU, AL, VCR).

    Args:
        path: the JSONL file (format in the module docstring).
        instruction: the line after the options that asks for a letter.
        num_options: options per question; a letter beyond them is malformed (``invalid_letter``).
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "ecom_vqa"
    default_subtasks = ECOM_VQA_SUBTASKS

    def __init__(
        self,
        path: str,
        instruction: str = "Answer with the option's letter from the given choices directly.",
        num_options: int = 4,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_new_tokens", 8)
        super().__init__(path, **kwargs)
        self.instruction, self.num_options = instruction, num_options

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        qid = str(self.require(record, "id", source, (str, int)))
        subtask = self.check_subtask(record.get("subtask"), source)
        question = self.require(record, "question", source)
        options = self.require(record, "options", source, list)
        if len(options) != self.num_options:
            raise SchemaError(f"{source}: {len(options)} options; this benchmark asks {self.num_options}")
        letter = answer_letter(record.get("answer"), options, source)
        items = []
        for rot in rotate_options([str(o) for o in options], letter):
            uid = f"{qid}#r{rot.index}"
            prompt = f"{question}\n{options_block(rot.options)}\n{self.instruction}"
            sample = self.make_sample(uid, record, source, prompt, rot.answer)
            meta = {"question": qid, "rotation": rot.index, "options": rot.options}
            items.append(EvalItem(uid, subtask, sample, rot.answer, meta))
        return items

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        got = extract_letter(prediction, options=item.meta["options"])
        rotation = {"question": item.meta["question"], "rotation": item.meta["rotation"]}
        return Scored(float(got.ok and got.value == item.target), got.reason, got.value, rotation)

    def metrics(self) -> dict[str, Metric]:
        return {"circular": CircularMCQ(self.subtasks, num_options=self.num_options)}

    def update(self, metrics: Mapping[str, Metric], items: Sequence[EvalItem], scored: Sequence[Scored]) -> None:
        metrics["circular"].update(
            [i.meta["question"] for i in items],
            subtasks=[i.subtask for i in items],
            rotations=[i.meta["rotation"] for i in items],
            correct=[s.score == 1.0 for s in scored],
            reasons=[s.malformed for s in scored],
        )

    def rows(self, results: Mapping[str, Mapping[str, Tensor]]) -> list[ResultRow]:
        out = results["circular"]
        rows = [self.row(s, "circular_acc", out[f"acc/{s}"], out[f"count/{s}"]) for s in self.present_subtasks]
        details = {"rotation_acc": out["rotation_acc"], "incomplete": out["incomplete"]}
        return rows + [self.row(OVERALL, "circular_acc", out["acc"], out["count"], details)]
