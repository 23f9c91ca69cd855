"""The nine scoring faults of issue 19, one test each: every one of them inflated (or could inflate) a number."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch

from valley3.eval.benchmarks import EBay, ECInstruct, EcomCaption, EComMMMU, EcomVQA, OmniEcom
from valley3.eval.metrics import (
    WeightedSubtaskScore,
    attribute_counts,
    extract_answer_text,
    extract_json,
    extract_letter,
    score_captions,
)

from .benchmarks._util import run, write_jsonl

OPTIONS = ["red leather shoe", "blue canvas bag", "green wool hat", "black ceramic mug"]


def _record(bench, uid, output):
    item = next(i for i in bench.items if i.uid == uid)
    return bench.record(item, output)


# 1 ---------------------------------------------------------------------------------------------------------------
def test_1_answer_prefix_needs_a_word_boundary_and_captions_keep_theirs(tmp_path, media):
    assert extract_answer_text("Answering machine, black").value == "Answering machine, black"
    assert extract_answer_text("The answer is: red shoes").value == "red shoes"
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", [
        {"id": "a", "task": "aspect", "subtask": "general", "images": [media["red"]], "aspect": "brand",
         "answer": "Answers Pet Food"}]))
    assert _record(bench, "a", "Answers Pet Food")["score"] == 1.0
    refs = {"c1": ["a red leather bag with white straps"], "c2": ["a blue canvas shoe"]}
    outputs = {"c1": "The answer is a red leather bag with white straps", "c2": "a blue canvas shoe"}
    caption = EcomCaption(write_jsonl(tmp_path / "c.jsonl", [
        {"id": k, "images": [media["red"]], "captions": v} for k, v in refs.items()]),
        metrics=["bleu2"], tokenizer="simple")
    coco = score_captions(refs, outputs, ["bleu2"], tokenizer="simple")["bleu2"]  # COCO strips no prefix
    assert run(caption, outputs)["overall"].score == pytest.approx(coco, abs=1e-12)


# 2 ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [
    "The answer is A or B", "B. Actually no, C.", "(A) is wrong, (B) is right",
    "A. red leather shoe B. blue canvas bag C. green wool hat D. black ceramic mug",
])
def test_2_hedged_and_self_corrected_letters_are_ambiguous(text):
    got = extract_letter(text)
    assert (got.value, got.reason) == (None, "ambiguous")


def test_2_gold_or_another_letter_fails_every_rotation_and_non_circular_suites(tmp_path, media):
    vqa = EcomVQA(write_jsonl(tmp_path / "v.jsonl", [
        {"id": "q", "subtask": "IU", "question": "Q?", "options": OPTIONS, "answer": "B", "images": [media["red"]]}]))
    other = {"A": "B", "B": "C", "C": "D", "D": "A"}
    rows = run(vqa, {i.uid: f"The answer is {i.target} or {other[i.target]}" for i in vqa.items})
    assert rows["overall"].score == 0.0 and rows["overall"].malformed == {}  # attach_counts runs in the stage
    omni = OmniEcom(write_jsonl(tmp_path / "o.jsonl", [
        {"id": "o", "task": "moderation", "question": "Q?", "options": OPTIONS, "answer": "A"}]))
    rec = _record(omni, "o", "The answer is A or B")
    assert (rec["score"], rec["malformed"]) == (0.0, "ambiguous")


# 3 ---------------------------------------------------------------------------------------------------------------
def test_3_truncated_outer_json_is_malformed_and_arrays_are_kept_whole(tmp_path, media):
    cut = '{"item": {"brand": "Acme"}, "colour": "re'
    assert extract_json(cut).reason == "truncated_json"
    assert extract_json('[{"a": 1}, {"b": 2}]').value == [{"a": 1}, {"b": 2}]
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", [
        {"id": "d", "task": "dae", "images": [media["red"]], "answer": {"brand": "Acme"}}]))
    rec = _record(bench, "d", cut)
    assert (rec["score"], rec["malformed"]) == (0.0, "truncated_json")
    rec = _record(bench, "d", '[{"brand": "Acme"}, {"brand": "Lumo"}]')
    assert (rec["score"], rec["malformed"]) == (0.0, "wrong_type")  # an array where an object is asked


# 4 ---------------------------------------------------------------------------------------------------------------
def test_4_objects_in_lists_match_whole_and_ecinstruct_triples_as_tuples(tmp_path):
    ref = {"colours": [{"name": "red", "hex": "#f00"}, {"name": "blue", "hex": "#00f"}]}
    swapped = {"colours": [{"name": "red", "hex": "#00f"}, {"name": "blue", "hex": "#f00"}]}
    assert attribute_counts(swapped, ref)["tp"] == 0 and attribute_counts(ref, ref)["tp"] == 2
    triples = [{"attribute": "brand", "value": "Acme", "source": "title"},
               {"attribute": "colour", "value": "red", "source": "description"}]
    swapped = [{"attribute": "brand", "value": "Acme", "source": "description"},
               {"attribute": "colour", "value": "red", "source": "title"}]
    eci = ECInstruct(write_jsonl(tmp_path / "i.jsonl", [
        {"id": "t", "task": "Attribute_Value_Extraction", "instruction": "I", "input": "x", "output": triples}]))
    assert run(eci, {"t": json.dumps(swapped)})["overall"].score == 0.0
    assert run(eci, {"t": json.dumps(triples[::-1])})["overall"].score == 1.0


# 5 ---------------------------------------------------------------------------------------------------------------
def test_5_empty_reference_never_scores_a_malformed_output_and_ecinstruct_f1_is_micro(tmp_path, media):
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", [
        {"id": "d", "task": "dae", "images": [media["red"]], "answer": {}}]))
    assert _record(bench, "d", "I cannot tell.")["score"] == 0.0
    eci = ECInstruct(write_jsonl(tmp_path / "i.jsonl", [
        {"id": "a", "task": "Attribute_Value_Extraction", "instruction": "I", "output": {"brand": "Acme"}},
        {"id": "b", "task": "Attribute_Value_Extraction", "instruction": "I", "output": {"x": "1", "y": "2", "z": "3"}},
        {"id": "e", "task": "Attribute_Value_Extraction", "instruction": "I", "output": {}},
    ]))
    rows = run(eci, {"a": '{"brand": "Acme"}', "b": '{"x": "9"}', "e": "no json"})
    assert rows["overall"].score == pytest.approx(2 * 1 / (2 + 4))  # micro: 2 tp / (pred 2 + ref 4); macro was 0.5
    assert _record(eci, "e", "no json")["score"] == 0.0


# 6 ---------------------------------------------------------------------------------------------------------------
def test_6_ebay_json_tasks_unwrap_the_answer_field(tmp_path, media):
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", [
        {"id": "d", "task": "dae", "images": [media["red"]], "answer": {"brand": "Acme", "colour": "red"}}]))
    wrapped = '{"thinking process": "logo on the tongue", "answer": {"brand": "Acme", "colour": "red"}}'
    rec = _record(bench, "d", wrapped)
    assert (rec["score"], rec["malformed"]) == (1.0, None)
    assert run(bench, {"d": wrapped})["dae"].score == 1.0


# 7 ---------------------------------------------------------------------------------------------------------------
def test_7_judge_shares_count_every_output_and_report_the_malformed_share(tmp_path, media):
    rows = [{"id": f"i{k}", "task": "item_intelligence", "images": [media["red"]], "answer": {"brand": "Acme"}}
            for k in range(10)]
    bench = EBay(write_jsonl(tmp_path / "e.jsonl", rows))
    answers = {f"i{k}": "no json at all" for k in range(10)} | {"i0": '{"brand": "Acme"}'}
    ii = run(bench, answers)["item_intelligence"]
    assert ii.details["verifiable_correct"] == pytest.approx(0.1)
    assert ii.details["malformed_share"] == pytest.approx(0.9)


# 8 ---------------------------------------------------------------------------------------------------------------
def test_8_ecommmmu_table_equals_the_per_sample_scores_and_cp_is_click_through(tmp_path):
    answers = ["A B", "B A", "The answer is b", "Answer: b", "B"]  # gold B; only the last names B alone
    rows = [{"id": f"m{k}", "subtask": "MPC", "question": "Q?", "options": OPTIONS, "answer": "B"} for k in range(5)]
    bench = EComMMMU(write_jsonl(tmp_path / "m.jsonl", rows))
    table = run(bench, {f"m{k}": a for k, a in enumerate(answers)})["overall"].score
    per_sample = [_record(bench, f"m{k}", a)["score"] for k, a in enumerate(answers)]
    assert table == sum(per_sample) / 5 == 0.2
    import valley3.eval.benchmarks.ecommmmu as module

    assert "CP (click-through prediction" in module.__doc__ and "category" not in module.__doc__


# 9 ---------------------------------------------------------------------------------------------------------------
class _Holder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.score = WeightedSubtaskScore(["x"])
        self.layer = torch.nn.Linear(2, 2)

    def test_step(self, batch, batch_idx):
        self.score.update([1.0] * len(batch[0]), "x")

    def on_test_epoch_end(self):
        self.result = self.score.compute()


@pytest.mark.parametrize(("precision", "dtype"), [("bf16-true", torch.bfloat16), ("16-true", torch.float16)])
def test_9_metric_states_keep_their_dtypes_under_true_half_precision(precision, dtype, tmp_path):
    holder = _Holder()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(1000, 2)), batch_size=100)
    trainer = L.Trainer(accelerator="cpu", precision=precision, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.test(holder, data, verbose=False)
    assert holder.layer.weight.dtype == dtype  # the precision did cast the module
    assert holder.score.score_sum.dtype == torch.float64 and holder.score.total.dtype == torch.int64
    assert holder.result["score"].item() == 1.0
