"""The demo's effort-tagged reasoning samples: thinking that grows >= 1.5x per level, held-out products, sound answers."""

from __future__ import annotations

import json
import re
import statistics
from collections import defaultdict

import pytest
from transformers import AutoTokenizer

from valley3.data.demo import _catalog, make_demo
from valley3.data.demo_reasoning import KINDS, reasoning_samples
from valley3.data.formats import parse_record
from valley3.reasoning import PRESETS, count_thinking_tokens, parse_thinking

TOKENIZER = AutoTokenizer.from_pretrained("src/valley3/assets/tiny_tokenizer")
PRODUCTS = _catalog(48, 0)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_thinking_grows_at_least_one_and_a_half_times_per_level(preset):
    levels = PRESETS[preset]
    lengths = defaultdict(list)
    for row in reasoning_samples(PRODUCTS, 0, "train", preset):
        parsed = parse_thinking(row["messages"][-1]["content"])
        assert parsed.ok, (row["id"], parsed.error)
        kind = row["task"]
        lengths[kind, row["effort"]].append(count_thinking_tokens(parsed, TOKENIZER))
    for kind in KINDS:
        medians = [statistics.median(lengths[kind, name]) for name in levels.names]
        for level, below, above in zip(levels.levels[1:], medians, medians[1:]):
            assert above >= 1.5 * below and above > below, (kind, level.name, medians)
        thinks = [lv.thinks for lv in levels.levels]
        assert [m > 0 for m in medians] == thinks  # a level that does not think writes an empty block


def test_every_question_is_asked_at_every_level_with_one_answer():
    rows = reasoning_samples(PRODUCTS, 0, "train")
    by_question = defaultdict(dict)
    for row in rows:
        question = (row["id"].rsplit("-", 1)[0], row["messages"][0]["content"])
        by_question[question][row["effort"]] = parse_thinking(row["messages"][-1]["content"]).answer
    assert all(set(a) == {"minimal", "medium", "high"} and len(set(a.values())) == 1 for a in by_question.values())
    assert len(by_question) == len(KINDS) * sum(p["split"] == "train" for p in PRODUCTS)


def test_the_arithmetic_in_the_thinking_is_right():
    money, checked = r"\$(\d+\.\d\d)", 0
    for row in reasoning_samples(PRODUCTS, 0, "train"):
        for line in parse_thinking(row["messages"][-1]["content"]).thinking.splitlines():
            if m := re.fullmatch(rf"{money} - {money} = {money}.*", line):
                a, b, c = (round(float(x) * 100) for x in m.groups())
                assert a - b == c, line
                checked += 1
            if m := re.fullmatch(rf"(\d) x {money} = {money}\.", line.split("cost ")[-1]):
                q, a, b = int(m[1]), round(float(m[2]) * 100), round(float(m[3]) * 100)
                assert q * a == b, line
                checked += 1
    assert checked > 200


def test_make_demo_writes_train_and_held_out_files(tmp_path):
    paths = make_demo(tmp_path, n_products=6, seed=0, speech="synthetic")
    split = {p["id"]: p["split"] for p in map(json.loads, paths["catalog"].read_text().splitlines())}
    for name in ("reasoning_train", "reasoning_val"):
        rows = [json.loads(line) for line in paths[name].read_text().splitlines()]
        assert rows and {split[r["id"].split("-")[0]] for r in rows} == {name.split("_")[1]}
        for n, row in enumerate(rows, 1):
            sample = parse_record(row, f"{name}:{n}", tmp_path)
            assert sample.meta == {"effort": row["effort"], "task": row["task"]} and (tmp_path / row["images"][0]).is_file()
