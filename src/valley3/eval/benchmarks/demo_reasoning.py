"""DemoReasoning: the demo's held-out multi-step shopping questions, scored by exact answer match per task.

JSONL as `valley3 data demo` writes ``reasoning_val.jsonl``: a messages record per question and effort level
(``effort``, ``task``), the assistant turn ``<thinking>...</thinking>`` + the answer. Each question is asked once
(the record's effort is dropped: the evaluating stage sets the level); the reference is the answer after the
thinking. A prediction counts when it equals the reference after lower-casing and stripping spaces and a final
full stop; it is read after any ``<thinking>`` block.
"""

from __future__ import annotations

import json
from typing import Any

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.eval.benchmarks.scored import Scored
from valley3.eval.metrics import extract_answer_text
from valley3.reasoning.parse import parse_thinking


def _norm(text: str) -> str:
    return text.strip().lower().rstrip(".").strip()


class DemoReasoning(Benchmark):
    """The demo's reasoning questions (discount, budget, match, shipping): exact-match accuracy per task.

    Args:
        path: ``reasoning_val.jsonl`` of the demo (format in the module docstring).
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "demo_reasoning"
    default_subtasks = ("discount", "budget", "match", "shipping")

    def __init__(self, path: str, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._seen: set[str] = set()

    def load(self) -> list[EvalItem]:
        self._seen = set()
        return super().load()

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        messages = self.require(record, "messages", source, list)
        if len(messages) != 2 or [m.get("role") for m in messages] != ["user", "assistant"]:
            raise SchemaError(f"{source}: expected one user and one assistant message")
        key = json.dumps([messages[0], record.get("images"), record.get("audios")])
        if key in self._seen:  # the same question at another effort level
            return []
        self._seen.add(key)
        answer = parse_thinking(messages[1]["content"]).answer
        if not _norm(answer):
            raise SchemaError(f"{source}: the assistant turn has no answer after its thinking")
        uid = str(self.require(record, "id", source, (str, int))).rsplit("-", 1)[0]
        task = self.check_subtask(self.require(record, "task", source), source)
        sample = self.make_sample(uid, record, source, messages[0]["content"], answer)
        return [EvalItem(uid, task, sample, answer)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        answer = extract_answer_text(prediction)
        if not answer.ok:
            return Scored(0.0, answer.reason)
        return Scored(float(_norm(answer.value) == _norm(item.target)), None, answer.value)
