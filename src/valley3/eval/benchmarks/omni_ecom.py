"""Valley3's omni e-commerce benchmark: six task families over text, image, video and audio, zero-shot accuracy.

JSONL, one question per line::

    {"id": "pu-1", "task": "product_understanding", "question": "What kind of product is this?",
     "images": ["img/1.png"], "audios": [], "videos": [], "video_frames": [],
     "options": ["shoe", "bag", "mug", "lamp"], "answer": "A", "answer_format": "json"}

- ``task``: product_understanding, after_sales, search_recommendation, livestream, short_video,
  moderation (or the benchmark's ``subtasks``).
- ``options`` (optional): the question is multiple choice and ``answer`` is the correct option as a
  letter, a 0-based index or its text; the output must name exactly that option, by its letter or its text
  (VLMEvalKit's ``can_infer``; "A or B" is ``ambiguous``). Without options ``answer`` is the expected short
  answer, or a list of accepted answers, compared after normalisation (case, punctuation, articles).
- ``answer_format`` (optional): ``"json"`` asks for ``{"thinking process": ..., "answer": ...}`` (the
  release's format); ``"text"`` (default) asks for the answer alone. Either way the answer is read after
  any ``<thinking>`` block, from the JSON ``answer`` field when the output is JSON.
- media as in every suite: paths relative to the JSONL file; tags in ``question`` or put in front.

Each task's score is its accuracy; ``overall`` is the accuracy over all questions (tasks weighted by their
sizes), and ``macro`` the mean over tasks.
"""

from __future__ import annotations

from typing import Any

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem, answer_letter, options_block
from valley3.eval.benchmarks.scored import Scored, scored_match
from valley3.eval.metrics import extract_letter

OMNI_ECOM_TASKS = (
    "product_understanding",
    "after_sales",
    "search_recommendation",
    "livestream",
    "short_video",
    "moderation",
)
JSON_REQUEST = 'Reply in JSON: {"thinking process": "<your reasoning>", "answer": "<your answer>"}.'


class OmniEcom(Benchmark):
    """Valley3 omni e-commerce benchmark: accuracy on six task families, letter or short/JSON answers.

    Args:
        path: the JSONL file (format in the module docstring).
        choice_instruction: the line after the options of a multiple-choice question.
        text_instruction: the line after an open question (``""`` for none).
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "omni_ecom"
    default_subtasks = OMNI_ECOM_TASKS

    def __init__(
        self,
        path: str,
        choice_instruction: str = "Answer with the option's letter from the given choices directly.",
        text_instruction: str = "Answer briefly.",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_new_tokens", 64)
        super().__init__(path, **kwargs)
        self.choice_instruction, self.text_instruction = choice_instruction, text_instruction

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        task = self.check_subtask(record.get("task"), source)
        question = self.require(record, "question", source)
        answer_format = record.get("answer_format", "text")
        if answer_format not in ("text", "json"):
            raise SchemaError(f"{source}: answer_format {answer_format!r}; expected 'text' or 'json'")
        options = record.get("options")
        if options is not None:
            if not isinstance(options, list) or len(options) < 2:
                raise SchemaError(f"{source}: 'options' must be a list of at least 2 option texts")
            target = answer_letter(record.get("answer"), options, source)
            prompt = f"{question}\n{options_block([str(o) for o in options])}\n{self.choice_instruction}"
            meta = {"choice": True, "options": [str(o) for o in options]}
        else:
            target = self.require(record, "answer", source, (str, list))
            prompt = f"{question}\n{self.text_instruction}".rstrip()
            meta = {"choice": False}
        if answer_format == "json":
            prompt = f"{prompt}\n{JSON_REQUEST}"
        reference = target if isinstance(target, str) else str(target[0])
        if answer_format == "json":
            reference = {"thinking process": "", "answer": reference}
        sample = self.make_sample(uid, record, source, prompt, reference)
        return [EvalItem(uid, task, sample, target, meta)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        if item.meta["choice"]:
            got = extract_letter(prediction, options=item.meta["options"])
            return Scored(float(got.ok and got.value == item.target), got.reason, got.value)
        return scored_match(prediction, item.target)
