"""Normalised string match per sub-task, and per-attribute classification accuracy over given classes."""

import pytest

from valley3.eval.metrics import ClassificationAccuracy, StringMatch, match_answer, normalize_text


def _values(out):
    return {k: v.item() for k, v in out.items()}


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The  North Face!", "north face"),
        ("Ｃｏｔｔｏｎ", "cotton"),  # full-width -> NFKC
        ("T-Shirt, 1.5 inch", "tshirt 1.5 inch"),  # punctuation goes, except between digits
        ("A", "a"),  # an article alone is kept (a size or cup letter)
        (2.0, "2"),
    ],
)
def test_normalize_text(raw, norm):
    assert normalize_text(raw) == norm


def test_match_answer():
    assert match_answer("(B) red shoes", "B") == (True, None)  # a letter target takes the option letter
    assert match_answer("Answer: the Red Shoe.", ["blue", "red shoe"]) == (True, None)
    assert match_answer("blue", "red") == (False, None)
    assert match_answer("<thinking>unfinished", "red") == (False, "no_answer")


def test_string_match_per_subtask():
    m = StringMatch(subtasks=["general", "fashion"])
    m.update(["Answer: Nike", "The North Face", "Adidas!"], ["nike", "north face", "Puma"], "general")
    m.update(
        ["<thinking>fabric?</thinking>Ｃｏｔｔｏｎ", "", '{"answer": "Long-Sleeve"}', '{"answer": "sil'],
        ["cotton", "silk", ["long sleeve", "long-sleeve"], "silk"],
        ["fashion"] * 4,
    )
    out = _values(m.compute())
    # general: nike, north face right, adidas wrong -> 2/3; fashion: cotton, long-sleeve right -> 2/4
    assert out["acc/general"] == 2 / 3 and out["acc/fashion"] == 2 / 4
    assert out["acc"] == 4 / 7 and out["count"] == 7
    assert out["malformed/empty"] == 1 and out["malformed/truncated_json"] == 1 and out["malformed"] == 2


def test_classification_accuracy_per_attribute_and_mean():
    m = ClassificationAccuracy({"sleeve": ["long", "short", "sleeveless"], "neckline": ["v-neck", "crew", "round"]})
    m.update(["Long", "short", "three-quarter", "Sleeveless."], ["long", "long", "short", "sleeveless"], "sleeve")
    m.update(["V-Neck", "<thinking>crew or round", "crew"], ["v-neck", "crew", "crew"], ["neckline"] * 3)
    out = _values(m.compute())
    # sleeve: long, sleeveless right -> 2/4 ("three-quarter" is not a class: wrong and out of set)
    # neckline: v-neck, crew right -> 2/3 (the unclosed thinking is malformed)
    assert out["acc/sleeve"] == 2 / 4 and out["acc/neckline"] == 2 / 3
    assert out["acc"] == pytest.approx((2 / 4 + 2 / 3) / 2)  # = 7/12, mean over attributes
    assert out["acc_micro"] == 4 / 7
    assert out["out_of_set"] == 1 and out["out_of_set/sleeve"] == 1
    assert out["malformed/no_answer"] == 1
    with pytest.raises(ValueError, match="not a class"):
        m.update(["long"], ["cap"], "sleeve")
