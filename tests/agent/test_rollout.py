"""Rollouts: token continuity with the template, loss masks, stops at </tool_call>, errors and limits, HTTP tools."""

from __future__ import annotations

import dataclasses

import pytest

from valley3.agent.rollout import CALL_LIMIT, TOKEN_LIMIT, TURN_LIMIT, AgentRollout
from valley3.agent.trajectory import FINISHES
from valley3.agent.search.server import SearchClient, serving
from valley3.agent.search.tools import search_tools
from valley3.agent.tools import MALFORMED, TIMEOUT, UNKNOWN_TOOL, ToolRegistry
from valley3.data.processor import IGNORE_INDEX
from valley3.data.templates import render_tool_call

from .conftest import prompt_of, tiny_vision_model


def observation_lengths(policy, trajectory) -> list[int]:
    """Token count of each environment span (the end of the assistant line, the tool turn(s) with their image runs,
    the next "<|im_start|>assistant\\n"), computed from the conversation's text, not from the rollout's ids."""
    processor, turns = policy.processor, trajectory.sample.turns
    tok = processor.tokenizer
    lengths, i = [], 0
    image_run = 2 + processor.image.num_tokens(*processor.image.input_size(32, 32))
    while i < len(turns):
        if turns[i].role != "tool":
            i += 1
            continue
        texts = []
        while i < len(turns) and turns[i].role == "tool":
            texts.append(f"\n<tool_response>\n{turns[i].content}\n</tool_response>")
            i += 1
        text = "\n<|im_start|>user" + "".join(texts) + "<|im_end|>\n<|im_start|>assistant\n"
        pieces = text.split("<image>")
        lengths.append(sum(len(tok(p, add_special_tokens=False)["input_ids"]) for p in pieces)
                       + image_run * (len(pieces) - 1))
    return lengths


@pytest.mark.parametrize("name, turns", [("two_turns", 2), ("three_turns", 3)])
def test_rollout_ids_equal_the_template_rendering(trained, trajectories, registry, name, turns):
    policy, _ = trained
    reference = trajectories[name]
    [[t]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt_of(reference)])
    assert (t.finish, t.turns, t.tool_calls, t.errors) == ("answer", turns, turns - 1, [])
    # The trained model reproduced the script: thinking blocks kept, results (with photos) from the live engine.
    assert [(x.role, x.content) for x in t.sample.turns] == [(x.role, x.content) for x in reference.turns]
    assert len(t.sample.media) == 1 + (turns - 1)  # the user's photo, then one photo per tool response
    calls = [x.content for x in t.sample.turns if x.role == "assistant"][:-1]
    assert len(calls) == turns - 1 and all(c.endswith("</tool_call>") for c in calls)  # the stop string is kept
    assert "<thinking>" in t.sample.turns[2].content and t.retokenized == 0
    full = policy.processor(t.sample)  # the training rendering (what agentic SFT learns from)
    newline = policy.processor.tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert t.prompt_ids + t.token_ids + newline == full.input_ids.tolist()
    assert t.prompt_ids == policy.prompt_ids(prompt_of(reference))
    labels = full.labels.tolist()[len(t.prompt_ids): len(t.prompt_ids) + len(t.token_ids)]
    assert t.loss_mask == [int(x != IGNORE_INDEX) for x in labels]
    assert t.loss_mask.count(0) == sum(observation_lengths(policy, t)) > 0
    example = t.example(policy.processor)
    assert len(example.pixel_values) == turns  # tool photos are image inputs of the training batch
    assert t.answer == reference.turns[-1].content.split("</thinking>")[-1]


def test_generation_stops_at_the_end_of_a_call(trained, trajectories, registry):
    policy, _ = trained
    prompt = prompt_of(trajectories["stop"])
    call = render_tool_call("image_search", {"image": 1})
    [[free]] = policy.generate([prompt], max_new_tokens=96, temperature=0)  # without the stop the model goes on
    assert free.text == call + "\nWaiting for the search."
    [[t]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert t.sample.turns[2].content == call and t.sample.turns[3].role == "tool"  # cut right after </tool_call>
    assert t.tool_calls >= 1 and "Waiting" not in t.text


def test_failed_calls_answer_with_the_documented_messages(trained, trajectories, registry):
    from valley3.rewards.agentic import format_score

    policy, _ = trained
    [[t]] = AgentRollout(registry, max_new_tokens=64, temperature=0)(policy, [prompt_of(trajectories["errors"])])
    messages = [MALFORMED.format(detail="Expecting ',' delimiter at character 55"),
                UNKNOWN_TOOL.format(name="price_lookup", names="image_search, text_search, wait"),
                TIMEOUT.format(name="wait", seconds=0.3)]
    assert t.errors == ["malformed", "unknown_tool", "timeout"] and t.messages == messages and t.failed_calls == 3
    assert [x.content for x in t.sample.turns if x.role == "tool"] == messages
    assert t.finish == "answer" and t.answer == "Sorry." and format_score(t) == 0.0
    # Each failure alone zeroes the format reward of this otherwise well-formed answer.
    assert format_score(dataclasses.replace(t, errors=[])) == 1.0
    for kind in t.errors:
        assert format_score(dataclasses.replace(t, errors=[kind])) == 0.0, kind


def test_turn_call_and_token_limits(trained, trajectories, registry):
    from valley3.rewards.agentic import format_score

    policy, _ = trained
    prompt = prompt_of(trajectories["three_turns"])
    [[full]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert full.finish == "answer" and full.tool_calls == 2 and format_score(full) == 1.0
    [[capped]] = AgentRollout(registry, max_turns=2, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert capped.finish == "max_turns" and capped.turns == 2 and capped.tool_calls == 1
    assert capped.messages == [TURN_LIMIT.format(turns=2)] and format_score(capped) == 0.0
    assert capped.sample.turns[-1].role == "assistant" and capped.answer is None
    [[calls]] = AgentRollout(registry, max_tool_calls=1, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert calls.errors[0] == "call_limit" and calls.sample.turns[5].content == CALL_LIMIT.format(calls=1)
    assert format_score(calls) == 0.0
    [[short]] = AgentRollout(registry, max_tokens=60, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert short.finish == "max_tokens" and TOKEN_LIMIT.format(tokens=60) in short.messages
    assert len(short.token_ids) <= 60 + 96 + 1  # a turn runs to the budget left, then its <|im_end|>


def test_sampled_rollouts_are_seeded_and_never_raise(trained, trajectories, registry):
    from valley3.policy import Policy, build_processor

    model = tiny_vision_model(seed=3).eval()  # untrained: it writes anything, placeholder tokens included
    policy = Policy(model, build_processor(model))
    rollout = AgentRollout(registry, max_turns=3, max_new_tokens=24, temperature=1.0)
    prompts = [prompt_of(trajectories["two_turns"]), prompt_of(trajectories["errors"])]
    groups = rollout(policy, prompts, n=3, seed=5)
    assert [len(g) for g in groups] == [3, 3]
    again = rollout(policy, prompts, n=3, seed=5)
    for t, u in zip(sum(groups, []), sum(again, [])):
        assert t.token_ids == u.token_ids and t.finish == u.finish and t.finish in FINISHES
        assert len(t.token_ids) == len(t.loss_mask) == len(t.logprobs)
        t.example(policy.processor)  # continuity holds whatever was sampled
    trained_policy, _ = trained
    sampled = AgentRollout(registry, max_new_tokens=96, temperature=1.0)
    [[a, b]] = sampled(trained_policy, prompts[:1], n=2, seed=1)  # the trained model calls tools when sampling too
    assert a.prompt_ids == b.prompt_ids and a.tool_calls + b.tool_calls > 0 and a.token_ids != b.token_ids
    for t in (a, b):
        t.example(trained_policy.processor)


def test_http_search_tools_give_the_same_trajectories(trained, trajectories, registry, engine):
    policy, _ = trained
    prompt = prompt_of(trajectories["three_turns"])
    [[local]] = AgentRollout(registry, max_new_tokens=96, temperature=0)(policy, [prompt])
    with serving(engine) as url:
        remote_tools = ToolRegistry([*search_tools(SearchClient(url), k=1, fields=["price"], images=1),
                                     registry.tools["wait"]])
        [[remote]] = AgentRollout(remote_tools, max_new_tokens=96, temperature=0)(policy, [prompt])
    assert remote.token_ids == local.token_ids and remote.sample.media == local.sample.media
