"""The results table recomputed from predictions.jsonl alone, per suite, as a reader of the file would: every
row of the printed table must equal this (the tests' independent check that the table sums the file)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from valley3.eval.metrics import score_captions

OVERALL = "overall"


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _micro_f1(records: Sequence[Mapping[str, Any]]) -> float:
    tp, pred, ref = (sum(r["counts"][k] for r in records) for k in ("tp", "pred", "ref"))
    return 2 * tp / (pred + ref) if pred + ref else 0.0


def _by(records, key):
    groups = defaultdict(list)
    for r in records:
        groups[key(r)].append(r)
    return groups


def _sample_weighted(records) -> dict[str, dict[str, float]]:
    """Sub-task = mean score (micro F1 where the lines carry counts); overall weighted by sample counts."""
    out = {}
    for sub, rs in _by(records, lambda r: r["subtask"]).items():
        out[sub] = {"score": _micro_f1(rs) if "counts" in rs[0] else _mean([r["score"] for r in rs]), "n": len(rs)}
    total = sum(v["n"] for v in out.values())
    overall = sum(v["score"] * v["n"] for v in out.values()) / total
    out[OVERALL] = {"score": overall, "macro": _mean([v["score"] for v in out.values()]), "n": total}
    return out


def _circular(records) -> dict[str, dict[str, float]]:
    questions = _by(records, lambda r: r["question"])
    passed = {q: float(all(r["score"] == 1.0 for r in rs) and len({r["rotation"] for r in rs}) == 4)
              for q, rs in questions.items()}
    out = {}
    for sub, qs in _by(list(questions), lambda q: questions[q][0]["subtask"]).items():
        out[sub] = {"score": _mean([passed[q] for q in qs]), "n": len(qs)}
    out[OVERALL] = {"score": _mean(list(passed.values())), "n": len(passed),
                    "rotation_acc": _mean([r["score"] for r in records])}
    return out


def _shares(verdicts: Sequence[str] | None) -> dict[str, float]:
    if verdicts is None:
        return {"malformed_share": 1.0}
    if not verdicts:
        return {"no_claims": 1.0}
    return {v: verdicts.count(v) / len(verdicts) for v in set(verdicts)}


def _ebay(records) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    task = lambda r: r["subtask"].split("/")[0]  # noqa: E731
    for name, rs in _by(records, task).items():
        if name in ("aspect", "deep_fashion"):
            subs = {s: _mean([r["score"] for r in g]) for s, g in _by(rs, lambda r: r["subtask"]).items()}
            out |= {s: {"score": v} for s, v in subs.items()}
            overall = _mean([r["score"] for r in rs])
            out[name] = {"score": overall} if name == "aspect" else {
                "score": _mean(list(subs.values())), "acc_micro": overall,
                "out_of_set": sum(r["out_of_set"] for r in rs)}
            continue
        tp, pred, ref = (sum(r["counts"][k] for r in rs) for k in ("tp", "pred", "ref"))
        keys, halluc = (sum(r["counts"][k] for r in rs) for k in ("pred_keys", "hallucinated_keys"))
        out[name] = {"score": _micro_f1(rs), "precision": tp / pred if pred else 0.0,
                     "recall": tp / ref if ref else 0.0, "hallucination_rate": halluc / keys if keys else 0.0}
        if name == "item_intelligence":
            for r in rs:
                for share, w in _shares(r["verdicts"]).items():
                    out[name][share] = out[name].get(share, 0.0) + w / len(rs)
    return out


def table_from_predictions(
    suite: str, records: Sequence[Mapping[str, Any]], references=None, tokenizer: str = "simple"
) -> dict:
    """``{subtask: {"score": ..., <detail>: ...}}`` of one benchmark from its predictions.jsonl lines
    (``references``: id -> reference captions, for the caption suite's corpus metrics)."""
    records = [r for r in records if r["malformed"] != "skipped"]
    if suite == "ecom_vqa":
        return _circular(records)
    if suite == "ebay":
        return _ebay(records)
    if suite == "ecom_caption":
        scores = score_captions({r["id"]: references[r["id"]] for r in records},
                                {r["id"]: r["extracted"] for r in records}, ["bleu2", "cider", "rouge_l"], tokenizer)
        return {OVERALL: {"score": scores["bleu2"], "cider": scores["cider"], "rouge_l": scores["rouge_l"]}}
    return _sample_weighted(records)


def _close(a: float | None, b: float, tol: float) -> bool:
    a = math.nan if a is None else a  # results.json writes NaN as null
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol


def assert_table_matches(rows, expected: Mapping[str, Mapping[str, float]], tol: float = 1e-12) -> None:
    """Every row's score (and each detail the file determines) equals the recomputed value."""
    assert rows and {r.subtask for r in rows} <= set(expected), (sorted(r.subtask for r in rows), sorted(expected))
    for row in rows:
        want = expected[row.subtask]
        assert _close(row.score, want["score"], tol), (row, want)
        for key, value in want.items():
            if key in row.details:
                assert _close(row.details[key], value, tol), (row.subtask, key, row.details[key], value)
