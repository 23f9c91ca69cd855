"""ChineseEcomQA: Chinese short answers normalised (full-width, Chinese punctuation, CJK spacing), accuracy per
category and sample-weighted overall."""

from __future__ import annotations

import pytest

from valley3.data.schema import SchemaError
from valley3.eval.benchmarks import ChineseEcomQA, normalize_cjk

from ._util import run, write_jsonl


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  ＡＢＣ，", "abc"),  # full-width letters and comma -> half-width, punctuation stripped
        ("连衣裙。", "连衣裙"),
        ("【红色】“连衣裙”！", "红色连衣裙"),
        ("红色 连衣裙", "红色连衣裙"),  # no space next to a CJK character
        ("华为 Mate 60", "华为mate 60"),  # spaces between latin words stay
        ("１，０００元", "1,000元"),  # full-width digits; the separator between digits is kept
    ],
)
def test_normalize_cjk(raw, expected):
    assert normalize_cjk(raw) == expected


@pytest.fixture
def qa(tmp_path):
    rows = [
        {"id": "c1", "category": "category_concept", "sub_category": "服饰", "question": "小黑裙属于哪个品类？",
         "answer": "连衣裙"},
        {"id": "c2", "category": "category_concept", "sub_category": "数码", "question": "平板属于哪个品类？",
         "answer": "平板电脑"},
        {"id": "b1", "category": "brand_concept", "sub_category": "数码", "question": "Mate 系列是哪个品牌的？",
         "answer": ["华为", "HUAWEI"]},
        {"id": "b2", "category": "brand_concept", "sub_category": "美妆", "question": "这个品牌的英文缩写？",
         "answer": "abc"},
    ]
    return ChineseEcomQA(write_jsonl(tmp_path / "qa.jsonl", rows))


def test_prompt_and_categories_from_the_data(qa):
    assert qa.items[0].prompt == "小黑裙属于哪个品类？\n请直接给出简短的答案。"
    assert qa.items[0].reference == "连衣裙" and qa.items[2].target == ["华为", "HUAWEI"]
    assert qa.subtasks == ["category_concept", "brand_concept"]
    assert qa.items[1].meta == {"category": "category_concept", "sub_category": "数码"}


def test_accuracy_per_category_weighted_overall_and_macro(qa):
    answers = {
        "c1": "连衣裙。",  # right
        "c2": "答案：平板",  # wrong (not the reference)
        "b1": '{"answer": "ＨＵＡＷＥＩ"}',  # right: the second accepted answer, full-width
        "b2": "<thinking>英文</thinking>  ＡＢＣ，",  # right
    }
    rows = run(qa, answers)
    assert rows["category_concept"].score == 0.5 and rows["category_concept"].metric == "acc"
    assert rows["brand_concept"].score == 1.0 and rows["brand_concept"].count == 2
    assert rows["overall"].score == pytest.approx(3 / 4)
    assert rows["overall"].details["macro"] == pytest.approx((0.5 + 1) / 2)


def test_group_by_sub_category(qa):
    by_sub = ChineseEcomQA(qa.path, group="sub_category")
    rows = run(by_sub, {"c1": "连衣裙", "c2": "平板电脑", "b1": "苹果", "b2": "abc"})
    assert by_sub.subtasks == ["服饰", "数码", "美妆"]
    assert (rows["服饰"].score, rows["数码"].score, rows["美妆"].score) == (1.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="group"):
        ChineseEcomQA(qa.path, group="industry")


def test_bad_records_name_their_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"id": "x", "category": "c", "question": "？", "answer": "。"}])
    with pytest.raises(SchemaError, match=r"bad\.jsonl:1: 'answer'"):
        _ = ChineseEcomQA(path).items
    path = write_jsonl(tmp_path / "bad2.jsonl", [{"id": "x", "question": "？", "answer": "是"}])
    with pytest.raises(SchemaError, match="missing 'category'"):
        _ = ChineseEcomQA(path).items
