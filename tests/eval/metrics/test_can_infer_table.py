"""README's answer-extraction table, recomputed: valley3's letter beside VLMEvalKit's ``can_infer`` on 30+
crafted answers, the latter from the rules as README states them (re-implemented here, not copied), and
every row where valley3 and the classic rules name different options carries its reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

from valley3.eval.metrics import extract_letter

README = Path(__file__).resolve().parents[3] / "README.md"
OPTIONS = ["red leather shoe", "blue canvas bag", "green wool hat", "black ceramic mug"]
CHOICES = dict(zip("ABCD", OPTIONS))
# can_infer_option answers these "Z" (no option) before looking for letters.
REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
            "I'm sorry, but without the image provided", "Cannot determine the answer")
VERBOSE = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")  # HEAD's chain-of-thought pattern


def can_infer(answer: str, head: bool = False) -> str | None:
    """VLMEvalKit's can_infer: the classic rules (2023 - Jul 2025) or, with ``head``, today's additions."""
    return _by_letter(answer, head) or _by_text(answer, head)


def _by_letter(answer: str, head: bool) -> str | None:
    if "Failed to obtain answer via API" in answer:
        return None
    if any(phrase in answer for phrase in REFUSALS):
        return "Z"
    tokens = re.sub(r"[.()\[\],:;!*#{}]", " ", answer).split()  # these characters and whitespace separate
    named = [c for c in CHOICES if c in tokens]
    if len(named) == 1 and (not head or tokens.index(named[0]) >= len(tokens) - 4):  # HEAD: in the last 4
        return named[0]
    if not named and "Z" in tokens:
        return "Z"
    if head and (m := VERBOSE.search(answer)) and m.group(1).upper() in CHOICES:
        return m.group(1).upper()
    return None


def _by_text(answer: str, head: bool) -> str | None:
    answer = answer.lower()
    if head and len(answer) > 2 * sum(map(len, OPTIONS)):  # HEAD: a long answer is never read by text
        return None
    named = [c for c, text in CHOICES.items() if text.lower() in answer]
    return named[0] if len(named) == 1 else None


def _table() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- can_infer table -->")[1].split("<!-- /can_infer table -->")[0]
    lines = [line for line in block.strip().splitlines() if line.startswith("|")][2:]  # header, rule
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]


def _cell(letter: str | None) -> str:
    return letter or "—"


def test_readme_table_is_what_valley3_and_can_infer_give():
    rows = _table()
    assert len(rows) >= 30
    for number, answer, ours, classic, head, why in rows:
        text = json.loads(answer.strip("`"))
        got = extract_letter(text, options=OPTIONS)
        assert ours == (got.value if got.ok else got.reason), (number, text, got)
        assert classic == _cell(can_infer(text)), (number, text)
        assert head == _cell(can_infer(text, head=True)), (number, text)
        named = {"ours": got.value if got.ok else None, "classic": None if classic in ("—", "Z") else classic}
        assert (named["ours"] == named["classic"]) or why, f"row {number}: a difference without its reason"


def test_the_table_covers_each_rule():
    answers = [json.loads(row[1].strip("`")) for row in _table()]
    reasons = {extract_letter(a, options=OPTIONS).reason for a in answers}
    assert {None, "ambiguous", "no_letter", "invalid_letter", "refused", "empty", "truncated_json"} <= reasons
    assert any(can_infer(a) != can_infer(a, head=True) for a in answers)  # HEAD's additions are shown
