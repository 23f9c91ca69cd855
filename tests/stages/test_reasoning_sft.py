"""ReasoningSFTStage: the effort level set reaches the template, and `train_thinking` switches the loss off exactly
on the thinking span."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_omni
from valley3.data.collate import PadCollator
from valley3.data.formats import parse_record
from valley3.data.processor import IGNORE_INDEX
from valley3.reasoning import FIVE, format_reasoning
from valley3.stages import ReasoningSFTStage

RECORD = {"id": "r1", "effort": "low", "messages": [
    {"role": "user", "content": "What do 3 mugs at $4.99 cost?"},
    {"role": "assistant", "content": format_reasoning("3 x $4.99 = $14.97.", "$14.97.")}]}


@pytest.fixture(scope="module")
def stages():
    return {flag: ReasoningSFTStage(tiny_omni(), efforts="five", train_thinking=flag, max_len=512)
            for flag in (True, False)}


def test_the_switch_masks_exactly_the_thinking_text(stages):
    sample = parse_record(RECORD, "sft.jsonl:1", ".")
    on, off = stages[True].processor(sample), stages[False].processor(sample)
    assert torch.equal(on.input_ids, off.input_ids)
    tok = stages[True].processor.tokenizer
    thinking = tok("\n3 x $4.99 = $14.97.\n", add_special_tokens=False)["input_ids"]
    differs = (on.labels != off.labels).nonzero().flatten().tolist()
    assert len(differs) == len(thinking) and on.input_ids[differs].tolist() == thinking
    assert (off.labels[differs] == IGNORE_INDEX).all()
    assert tok.decode(on.input_ids[differs[0] - 1]) == "<thinking>" and tok.decode(on.input_ids[differs[-1] + 1]) == (
        "</thinking>")


def test_the_level_set_reaches_the_prompt_and_the_loss_runs(stages):
    stage = stages[False]
    assert stage.processor.template.efforts is FIVE and stage.hparams.efforts == "five"
    sample = parse_record(RECORD, "sft.jsonl:1", ".")
    example = stage.processor(sample)
    assert "Reasoning effort: low" in stage.processor.tokenizer.decode(example.input_ids)
    loss, count = stage.model_step(PadCollator(stage.processor.pad_id)([example]))
    assert torch.isfinite(loss) and count == (example.labels[1:] != IGNORE_INDEX).sum()


def test_an_unknown_level_set_is_an_error():
    with pytest.raises(ValueError, match="unknown effort level preset 'huge'"):
        ReasoningSFTStage(tiny_omni(), efforts="huge")
