"""Reward functions: format, answer accuracy, length penalty, word share, weighted composition, judge parsing."""

from __future__ import annotations

import pytest
import torch

from valley3.data.schema import Sample, Turn
from valley3.rewards import (
    AnswerReward,
    FormatReward,
    HFJudge,
    JudgeReward,
    LengthPenalty,
    RewardContext,
    WeightedRewards,
    TokenShareReward,
    parse_score,
    split_thinking,
)


def _record(answer: str | None, question: str = "What colour is the mug?") -> dict:
    messages = [{"role": "user", "content": question}]
    return {"messages": messages + ([{"role": "assistant", "content": answer}] if answer is not None else [])}


@pytest.mark.parametrize("text, ok", [
    ("<thinking>red glaze</thinking>\n\nRed.", True),
    ("  <thinking>\n</thinking>Red", True),  # an empty block (effort none) still formats right
    ("Red.", False),  # no block
    ("<thinking>red</thinking>", False),  # no answer
    ("<thinking>red", False),  # never closed
    ("so <thinking>red</thinking> Red", False),  # text before the block
    ("<thinking>a</thinking><thinking>b</thinking> Red", False),  # two blocks
    ("<thinking>a</thinking> Red </thinking>", False),  # stray close
])
def test_format_reward_wants_one_thinking_block_then_an_answer(text, ok):
    assert FormatReward()(_record("Red"), text) == float(ok)


def test_answer_reward_scores_the_answer_after_thinking_against_the_reference():
    reward = AnswerReward()
    assert reward(_record("Red."), "<thinking>it is red</thinking> red") == 1.0
    assert reward(_record("Red."), "<thinking>red</thinking> blue") == 0.0
    assert reward(_record("<thinking>x</thinking> B"), "The answer is (B)") == 1.0  # choice, reference thinks too
    assert reward(_record('{"colour": "red", "size": "L"}'), '{"colour": "red", "size": "M"}') == pytest.approx(0.5)
    sample = Sample("s", [Turn("user", "q"), Turn("assistant", "Blue")])
    assert reward(sample, "blue") == 1.0
    assert reward(_record(None), "red") == 0.0 and reward.stats() == {"no_reference": 1}


def test_length_penalty_is_dapos_soft_overlong_punishment():
    penalty = LengthPenalty(buffer=10)

    def at(n: int, why: str = "eos") -> float:
        return penalty(_record("x"), "x", RewardContext(num_tokens=n, finish_reason=why, max_new_tokens=50))

    assert at(40) == 0.0 and at(45) == pytest.approx(-0.5) and at(49) == pytest.approx(-0.9)
    assert at(50) == -1.0 and at(20, "length") == -1.0


def test_token_share_counts_the_target_tokens_among_generated_ids():
    reward = TokenShareReward("red")  # one token of the tiny tokenizer (id 518)
    assert reward.targets == {518}
    assert reward(_record("x"), "", RewardContext(token_ids=(518, 518, 7, 518))) == pytest.approx(0.75)
    assert reward(_record("x"), "", RewardContext(token_ids=())) == 0.0


def test_weighted_rewards_sum_and_keep_each_function():
    combo = WeightedRewards([FormatReward(), AnswerReward()], weights=[0.5, 1.0])
    totals, each = combo.score([_record("Red")] * 2, ["<thinking>a</thinking> red", "red"], [RewardContext()] * 2)
    assert totals == [1.5, 1.0] and each == {"format": [1.0, 0.0], "accuracy": [1.0, 1.0]}
    with pytest.raises(ValueError, match="names must differ"):
        WeightedRewards([FormatReward(), FormatReward()])
    with pytest.raises(ValueError, match="weights"):
        WeightedRewards([FormatReward()], [1.0, 2.0])


@pytest.mark.parametrize("reply, score", [
    ("Score: 7", 7.0), ("score=3.5\n", 3.5), ("First I thought Score: 2, then Score: 9", 9.0), ("8", 8.0),
    ("Score: 11", None), ("great answer", None), ("", None), ("Score: -1", None),
])
def test_judge_score_parsing(reply, score):
    assert parse_score(reply, 0, 10) == score


def test_split_thinking_returns_the_parts():
    assert split_thinking("<thinking> a </thinking>\n\n b ") == ("a", "b", True)
    assert split_thinking("plain") == (None, "plain", False)


def test_hf_judge_from_a_local_folder_runs_and_garbage_counts_as_failure(tmp_path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from valley3.assets import tiny_tokenizer_dir
    from valley3.models.presets import DECODERS

    torch.manual_seed(0)
    kwargs = dict(DECODERS["tiny-qwen3"])
    model = AutoModelForCausalLM.from_config(AutoConfig.for_model(kwargs.pop("model_type"), **kwargs))
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir()).save_pretrained(tmp_path)
    reward = JudgeReward(HFJudge(str(tmp_path), device="cpu"), max_tokens=4)
    got = reward.batch([_record("Red")] * 3, ["red", "blue", "green"], [RewardContext()] * 3)
    # A random model replies with noise: never a score in range, so every reward is a counted 0.
    assert got == [0.0, 0.0, 0.0]
    assert reward.stats()["calls"] == 3 and reward.stats()["failures/garbage"] == 3
    assert "Reference answer: Red" in reward.request(_record("<thinking>t</thinking> Red"), "x")[0]["content"]
    assert "answer: ab\n" in reward.request(_record("Red"), "a<|audio_pad|>b<|im_end|>")[0]["content"]
