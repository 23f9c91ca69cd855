"""One template: an effort level renders the same bytes for SFT and for generation (golden files); the thinking
span leaves the loss exactly when `train_thinking` is off; bad effort tags name the sample."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_omni
from valley3.data.formats import parse_record
from valley3.data.processor import IGNORE_INDEX, SampleError
from valley3.policy import Policy, build_processor
from valley3.reasoning import PRESETS, format_reasoning

GOLDEN = Path(__file__).parent / "golden"
ANSWER = format_reasoning("The price tag shows $12.99.\n2 x $12.99 = $25.98.", "$25.98.")
LEVELS = [(preset, level.name) for preset, levels in PRESETS.items() for level in levels.levels]


@pytest.fixture(scope="module")
def policy():
    model = tiny_omni().eval()
    return Policy(model, build_processor(model))


@pytest.fixture(scope="module")
def processor(policy):
    return policy.processor


def _record(effort: str | None, system: str | None = None, answer: str = ANSWER) -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": "What do 2 of the $12.99 mugs cost?"},
                 {"role": "assistant", "content": answer}]
    record = {"id": "q1", "messages": messages}
    return record | ({"effort": effort} if effort else {})


def _sample(**kwargs):
    return parse_record(_record(**kwargs), "golden.jsonl:1", ".")


@pytest.mark.parametrize("preset, level", LEVELS, ids=[f"{p}-{lv}" for p, lv in LEVELS])
def test_prompt_matches_golden_file_and_prefixes_the_sft_text(processor, preset, level):
    processor.template.efforts = PRESETS[preset]
    system = "You are a shopping assistant." if preset == "five" else None  # a sample's own base prompt, too
    sample = _sample(effort=level, system=system)
    prompt = processor.template.text(sample.turns[:-1], add_generation_prompt=True, effort=level)
    golden = GOLDEN / f"{preset}_{level}.txt"
    if os.environ.get("VALLEY3_UPDATE_GOLDEN"):
        golden.write_text(prompt, encoding="utf-8", newline="")
    assert prompt == golden.read_text(encoding="utf-8")
    sft = processor.template.text(sample.turns, effort=level)
    assert sft == prompt + ANSWER + "<|im_end|>\n"
    # The ids: the generation prompt is exactly the start of the training example, token for token.
    train, gen = processor(sample), processor(sample, generation=True)
    assert torch.equal(train.input_ids[: len(gen)], gen.input_ids)
    assert processor.tokenizer.decode(gen.input_ids) == prompt
    processor.template.efforts = PRESETS["release"]


@pytest.mark.parametrize("level", ["minimal", "high"])
def test_rl_rollouts_see_the_same_ids_as_sft_and_inference(policy, level):
    """GRPO's prompts and scored completions go through the policy: the same ids as the SFT example."""
    sample, record = _sample(effort=level), _record(level)
    train = policy.processor(sample).input_ids.tolist()
    prompt = policy.prompt_ids(record)
    assert prompt == policy.processor(sample, generation=True).input_ids.tolist() == train[: len(prompt)]
    completion = train[len(prompt) : -1]  # the answer and its end-of-turn token (the template's "\n" is not generated)
    batch = policy.completion_batch([record], [completion])
    assert batch.input_ids[0].tolist() == train[:-1]


def test_samples_without_effort_render_as_before(processor):
    text = processor.template.text(_sample(effort=None).turns)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n") and "Reasoning" not in text


def test_untrained_thinking_differs_exactly_on_the_thinking_span(processor):
    sample = _sample(effort="high")
    processor.template.train_thinking = True
    trained = processor(sample)
    processor.template.train_thinking = False
    untrained = processor(sample)
    processor.template.train_thinking = True
    assert torch.equal(trained.input_ids, untrained.input_ids)
    ids = trained.input_ids.tolist()
    tok = processor.tokenizer.convert_tokens_to_ids
    # The last markers are the answer's (the system prompt's policy names them, too).
    start, end = (len(ids) - 1 - ids[::-1].index(tok(m)) for m in ("<thinking>", "</thinking>"))
    differs = (trained.labels != untrained.labels).nonzero().flatten().tolist()
    assert differs == list(range(start + 1, end))
    assert (untrained.labels[start + 1 : end] == IGNORE_INDEX).all()
    assert (trained.labels[start:] == trained.input_ids[start:]).sum() == len(ids) - start - 1  # all but the "\n"


@pytest.mark.parametrize("record, message", [
    (_record("ultra"), "unknown reasoning effort 'ultra'"),
    (_record("high", system="Be brief.\nReasoning effort: low"), "already carries an effort line"),
    (_record(["high"]), "effort must be a level name"),
])
def test_bad_effort_tags_name_the_sample(processor, record, message):
    with pytest.raises(SampleError, match=rf"golden.jsonl:1 \(sample 'q1'\).*{message}"):
        processor(parse_record(record, "golden.jsonl:1", "."))
