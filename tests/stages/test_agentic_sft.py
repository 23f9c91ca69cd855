"""Agentic SFT: tool-response tokens (and their images) carry no label and no gradient; failed calls optionally untrained."""

from __future__ import annotations

import torch

from valley3.data.collate import PadCollator
from valley3.data.processor import IGNORE_INDEX
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.data.templates import render_tool_call
from valley3.stages import AgenticSFTStage
from valley3.stages.base import masked_loss

from ..conftest import tiny_omni


def trajectory(media) -> Sample:
    turns = [Turn("user", "<image>Who sells this?"),
             Turn("assistant", "<thinking>Search it.</thinking>\n" + render_tool_call("image_search", {"image": 1})),
             Turn("tool", "1. Acme Red Shoe | seller: Orvik Goods <image>"),
             Turn("assistant", render_tool_call("text_search", {"query": "Orvik Goods"})),
             Turn("tool", "Error: text_search did not answer within 10 s."),
             Turn("tool", "1. Orvik Goods | rating: 4.5"),
             Turn("assistant", "Orvik Goods.")]
    return Sample("t", turns, [MediaRef("image", media["red"]), MediaRef("image", media["blue"])]).validate()


def tool_spans(stage, sample, ids: list[int]) -> list[range]:
    """Where each run of tool turns sits in `ids`, found from its own text (image runs expanded), not the template."""
    tok, spans, start = stage.processor.tokenizer, [], 0
    image_run = 2 + stage.processor.image.num_tokens(32, 32)
    i = 0
    while i < len(sample.turns):
        if sample.turns[i].role != "tool":
            i += 1
            continue
        text = "<|im_start|>user"
        while i < len(sample.turns) and sample.turns[i].role == "tool":
            text += f"\n<tool_response>\n{sample.turns[i].content}\n</tool_response>"
            i += 1
        pieces = (text + "<|im_end|>\n").split("<image>")
        want = tok(pieces[0], add_special_tokens=False)["input_ids"]
        for piece in pieces[1:]:
            want += [-1] * image_run + tok(piece, add_special_tokens=False)["input_ids"]
        at = next(s for s in range(start, len(ids)) if all(w in (-1, t) for w, t in zip(want, ids[s:s + len(want)])))
        spans.append(range(at, at + len(want)))
        start = at + len(want)
    return spans


def test_tool_response_tokens_carry_no_label_and_no_gradient(media):
    stage = AgenticSFTStage(tiny_omni(), mask_failed_calls=False, max_len=None)
    sample = trajectory(media)
    example = stage.processor(sample)
    ids, labels = example.input_ids.tolist(), example.labels.tolist()
    spans = tool_spans(stage, sample, ids)
    tool_positions = [p for span in spans for p in span]
    assert len(spans) == 2 and len(example.pixel_values) == 2
    masked = sum(labels[p] == IGNORE_INDEX for p in tool_positions)
    assert masked == len(tool_positions) == sum(len(s) for s in spans)  # every tool token masked, counted exactly
    tok = stage.processor.tokenizer
    trained = sum(len(tok(t.content, add_special_tokens=False)["input_ids"]) + 1 for t in sample.turns
                  if t.role == "assistant")  # each reply and its <|im_end|>
    assert sum(label != IGNORE_INDEX for label in labels) == trained
    batch = PadCollator(stage.processor.pad_id)([example])
    logits = stage.logits(batch)
    logits.retain_grad()
    total, count = masked_loss(logits, batch.labels)
    (total / count).backward()
    grad = logits.grad[0].abs().sum(-1)
    predicting_tool = [p - 1 for p in tool_positions]  # logits at p - 1 predict token p
    assert grad[predicting_tool].eq(0).all()
    assert grad[[p - 1 for p, label in enumerate(labels) if label != IGNORE_INDEX]].gt(0).all()


def test_failed_calls_are_untrained_unless_asked(media):
    sample = trajectory(media)
    masked, kept = (AgenticSFTStage(tiny_omni(), mask_failed_calls=flag, max_len=None).processor(sample)
                    for flag in (True, False))
    assert torch.equal(masked.input_ids, kept.input_ids)  # the same text either way
    difference = int((kept.labels != IGNORE_INDEX).sum() - (masked.labels != IGNORE_INDEX).sum())
    call = render_tool_call("text_search", {"query": "Orvik Goods"})  # the turn answered by "Error: ..."
    tokenizer = AgenticSFTStage(tiny_omni(), max_len=None).processor.tokenizer
    assert difference == len(tokenizer(call, add_special_tokens=False)["input_ids"]) + 1
