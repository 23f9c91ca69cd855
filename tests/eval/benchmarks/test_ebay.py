"""eBay tasks: aspect match, deep-fashion classes, JSON attribute F1, item intelligence with pluggable judges."""

from __future__ import annotations

import io
import json

import pytest

from valley3.eval.benchmarks import EBay, HTTPJudge, PromptJudge, RuleJudge

from ._util import run, write_jsonl

II_REF = {"brand": "Acme", "logo_visible": True, "condition": "new"}
II_PRED = '{"brand": "Acme", "logo_visible": false, "material": "leather"}'


@pytest.fixture
def rows(media):
    img = [media["red"]]
    return [
        {"id": "a1", "task": "aspect", "subtask": "general", "images": img, "aspect": "brand", "answer": "Acme"},
        {"id": "a2", "task": "aspect", "subtask": "fashion", "images": img, "aspect": "colour",
         "answer": ["Red", "crimson"]},
        {"id": "a3", "task": "aspect", "subtask": "fashion_title_category", "images": img, "aspect": "material",
         "title": "Acme canvas sneaker", "category": "Shoes", "answer": "Canvas"},
        {"id": "f1", "task": "deep_fashion", "images": img, "attribute": "sleeve",
         "classes": ["long", "short", "sleeveless"], "answer": "short"},
        {"id": "f2", "task": "deep_fashion", "images": img, "attribute": "sleeve",
         "classes": ["long", "short", "sleeveless"], "answer": "long"},
        {"id": "f3", "task": "deep_fashion", "images": img, "attribute": "neck", "classes": ["crew", "v-neck"],
         "answer": "v-neck"},
        {"id": "d1", "task": "dae", "images": img, "answer": {"brand": "Acme", "colour": "red", "size": {"waist": 32}}},
        {"id": "d2", "task": "dae", "images": img, "answer": {"pattern": "plain"}},
        {"id": "i1", "task": "item_intelligence", "images": [media["red"], media["blue"]], "answer": II_REF},
    ]


ANSWERS = {
    "a1": "acme.", "a2": "Blue", "a3": '{"answer": "canvas"}',
    "f1": "Short", "f2": "medium", "f3": "V-neck",
    "d1": '{"brand": "acme", "colour": "blue", "size": {"waist": 32}, "logo": "yes"}', "d2": "no json here",
    "i1": II_PRED,
}


def test_prompts_show_title_category_and_classes(tmp_path, rows):
    items = {i.uid: i for i in EBay(write_jsonl(tmp_path / "e.jsonl", rows)).items}
    assert items["a3"].prompt.splitlines()[:2] == ["<image>Title: Acme canvas sneaker", "Category: Shoes"]
    assert "Choose one of: long, short, sleeveless." in items["f1"].prompt
    assert items["a2"].subtask == "aspect/fashion" and items["f3"].subtask == "deep_fashion/neck"
    assert json.loads(items["d1"].reference) == rows[6]["answer"]
    assert len(items["i1"].sample.media) == 2


def test_every_task_scored_with_hand_computed_values(tmp_path, rows):
    out = run(EBay(write_jsonl(tmp_path / "e.jsonl", rows)), ANSWERS)
    assert [out[f"aspect/{s}"].score for s in ("general", "fashion", "fashion_title_category")] == [1.0, 0.0, 1.0]
    assert out["aspect"].score == pytest.approx(2 / 3)
    assert (out["deep_fashion/sleeve"].score, out["deep_fashion/neck"].score) == (0.5, 1.0)
    assert out["deep_fashion"].score == 0.75 and out["deep_fashion"].details["acc_micro"] == pytest.approx(2 / 3)
    assert out["deep_fashion"].details["out_of_set"] == 1
    # dae: pred pairs 4 + 0, ref pairs 3 + 1, tp 2 (brand, size.waist) -> P = R = F1 = 0.5; "logo" 1 of 4 keys
    dae = out["dae"]
    assert (dae.score, dae.details["precision"], dae.details["recall"]) == (0.5, 0.5, 0.5)
    assert dae.details["hallucination_rate"] == 0.25
    # item intelligence: 1 of 3 pairs right; the rule judge: brand right, logo wrong, material unverifiable
    ii = out["item_intelligence"]
    assert ii.score == pytest.approx(1 / 3)
    assert [ii.details[k] for k in ("verifiable_correct", "verifiable_incorrect", "unverifiable")] == [
        pytest.approx(1 / 3)] * 3
    assert ii.details["judged_fields"] == 3


def test_rule_judge_labels_fields_by_the_reference():
    fields = [("brand", "acme"), ("logo visible", "false"), ("material", "leather")]
    assert RuleJudge().judge(fields, II_REF, "q") == ["verifiable_correct", "verifiable_incorrect", "unverifiable"]


class _Scripted(PromptJudge):
    def __init__(self, reply):
        super().__init__()
        self.reply, self.prompts = reply, []

    def complete(self, prompt):
        self.prompts.append(prompt)
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def test_a_model_judge_decides_and_falls_back_to_rules_on_bad_replies(tmp_path, rows):
    fields = [("brand", "acme"), ("logo visible", "false")]
    judge = _Scripted('<thinking>hm</thinking>{"verdicts": ["unverifiable", "verifiable_correct"]}')
    assert judge.judge(fields, II_REF, "q") == ["unverifiable", "verifiable_correct"] and judge.fallbacks == 0
    assert "1. brand: acme" in judge.prompts[0]
    for reply in ('{"verdicts": ["unverifiable"]}', "not json", OSError("connection refused")):
        judge = _Scripted(reply)
        verdicts = judge.judge(fields, II_REF, "q")
        assert verdicts[1] == "verifiable_incorrect" and judge.fallbacks == (1 if "verdicts" in str(reply) else 2)
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", rows), judge=_Scripted('{"verdicts": ["unverifiable"] }'))
    ii = run(bench, ANSWERS)["item_intelligence"]
    assert ii.details["unverifiable"] == pytest.approx(2 / 3)  # judge: brand; rules: logo (wrong), material


def test_http_judge_posts_an_openai_chat_request(monkeypatch):
    sent = {}

    def fake_urlopen(request, timeout):  # no network: the request is inspected and answered here
        sent.update(url=request.full_url, body=json.loads(request.data), auth=request.get_header("Authorization"))
        reply = {"choices": [{"message": {"content": '{"verdicts": ["verifiable_correct"]}'}}]}
        return io.BytesIO(json.dumps(reply).encode())

    monkeypatch.setattr("urllib.request.urlopen", fake_urlopen)
    monkeypatch.setenv("JUDGE_KEY", "secret")
    judge = HTTPJudge("http://judge.local/v1/", "judge-model", api_key_env="JUDGE_KEY")
    assert judge.judge([("brand", "acme")], II_REF, "q") == ["verifiable_correct"]
    assert sent["url"] == "http://judge.local/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert sent["body"]["model"] == "judge-model" and sent["body"]["temperature"] == 0
