"""ChineseEcomQA: short factual answers on Chinese e-commerce concepts, normalised string match per category.

JSONL, one question per line::

    {"id": "cc-1", "category": "category_concept", "sub_category": "服饰",
     "question": "“小黑裙”通常属于哪个商品品类？", "answer": "连衣裙"}
    {"id": "bc-1", "category": "brand_concept", "sub_category": "数码",
     "question": "Mate 系列手机是哪个品牌的？", "answer": ["华为", "HUAWEI"], "images": []}

- ``category`` (the sub-task of the table; ``group: sub_category`` reports by ``sub_category`` instead):
  the concept type, e.g. the release's ten (industry categorisation, industry / category / brand /
  attribute / spoken / intent / review / relevance / personalised concept), under any names.
- ``sub_category`` (optional): the finer label (industry, product line), kept with each item.
- ``answer``: the reference, or a list of accepted answers. An answer counts when it equals one after
  :func:`normalize_cjk`: NFKC (full-width ``ＡＢＣ１`` -> ``abc1``), lowercase, punctuation removed
  (Chinese ``，。、“”【】《》`` too), and no space next to a CJK character, so no word splitting is needed.
  The model's answer is read after any ``<thinking>`` block, from a JSON ``answer`` field when it answers
  in JSON, without an ``答案：`` / ``Answer:`` prefix.
- media (optional) as in every suite; the release itself is text only.

The release grades with an LLM judge; this suite uses the string match, so numbers are a lower bound on
paraphrased answers. Each category's score is its accuracy; ``overall`` is the accuracy over all questions
(categories weighted by their sizes), ``macro`` the mean over categories.
"""

from __future__ import annotations

import re
from typing import Any

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks.base import Benchmark, EvalItem
from valley3.eval.benchmarks.scored import Scored
from valley3.eval.metrics import extract_answer_text, normalize_text

# CJK ideographs (and extension A), kana, hangul, full-width forms: scripts written without word spaces.
_CJK = r"\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_CJK_SPACE = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def normalize_cjk(text: Any) -> str:
    """:func:`normalize_text` (NFKC, lowercase, punctuation stripped) with the spaces around CJK removed."""
    return _CJK_SPACE.sub("", normalize_text(text))


class ChineseEcomQA(Benchmark):
    """ChineseEcomQA: accuracy of normalised short answers per concept category, sample-weighted overall.

    Args:
        path: the JSONL file (format in the module docstring).
        instruction: the line after each question (``""`` for none).
        group: the record field whose value is the sub-task: ``category`` or ``sub_category``.
        **kwargs: the common benchmark arguments (name, subtasks, limit, max_new_tokens, system_prompt,
            media_root, max_images).
    """

    suite = "chinese_ecomqa"

    def __init__(
        self, path: str, instruction: str = "请直接给出简短的答案。", group: str = "category", **kwargs: Any
    ) -> None:
        if group not in ("category", "sub_category"):
            raise ValueError(f"group {group!r}; expected 'category' or 'sub_category'")
        kwargs.setdefault("max_new_tokens", 32)
        super().__init__(path, **kwargs)
        self.instruction, self.group = instruction, group

    def build(self, record: dict[str, Any], source: str) -> list[EvalItem]:
        uid = str(self.require(record, "id", source, (str, int)))
        subtask = self.check_subtask(self.require(record, self.group, source), source)
        question = self.require(record, "question", source)
        answer = self.require(record, "answer", source, (str, list))
        accepted = [answer] if isinstance(answer, str) else [str(a) for a in answer]
        if not any(normalize_cjk(a) for a in accepted):
            raise SchemaError(f"{source}: 'answer' {answer!r} is empty after normalisation")
        prompt = f"{question}\n{self.instruction}".rstrip()
        sample = self.make_sample(uid, record, source, prompt, accepted[0])
        meta = {"category": record.get("category"), "sub_category": record.get("sub_category")}
        return [EvalItem(uid, subtask, sample, accepted, meta)]

    def score(self, item: EvalItem, prediction: str | None) -> Scored:
        got = extract_answer_text(prediction)
        if not got.ok:
            return Scored(0.0, got.reason)
        answer = normalize_cjk(got.value)
        return Scored(float(any(answer == normalize_cjk(t) for t in item.target)), None, got.value)
