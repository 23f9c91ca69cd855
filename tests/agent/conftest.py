"""A real catalog index, its search tools, scripted tool trajectories and a tiny model trained on them."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from valley3.agent.search import SearchEngine, write_synthetic_catalog
from valley3.models import OmniModel
from valley3.models.decoders import HFDecoder
from valley3.models.vision import SigLIPEncoder
from valley3.agent.search.tools import search_tools
from valley3.agent.tools import Tool, ToolContext, ToolRegistry, parse_tool_calls
from valley3.data.collate import PadCollator
from valley3.data.schema import MediaRef, Sample, Turn
from valley3.data.templates import render_tool_call

SYSTEM = "Use the tools."


def wait(seconds: float) -> str:
    """Wait, then say so.

    Args:
        seconds: how long.
    """
    time.sleep(seconds)
    return "waited"


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> SearchEngine:
    root = tmp_path_factory.mktemp("agent_catalog")
    return SearchEngine.build(write_synthetic_catalog(root / "catalog", 24, seed=3), root / "index", progress=False)


@pytest.fixture(scope="session")
def registry(engine) -> ToolRegistry:
    return ToolRegistry([*search_tools(engine, k=1, fields=["price"], images=1), Tool.from_function(wait, timeout=0.3)])


def scripted(registry: ToolRegistry, sample_id: str, user: str, images: list[str], replies: list[str]) -> Sample:
    """A conversation whose assistant turns are `replies` and whose tool turns come from running their calls."""
    sample = Sample(sample_id, [Turn("system", SYSTEM), Turn("user", user)], [MediaRef("image", p) for p in images])
    for reply in replies:
        sample.turns.append(Turn("assistant", reply))
        for call in parse_tool_calls(reply):
            result = registry.run(call, ToolContext([m.path for m in sample.media if m.kind == "image"]))
            sample.turns.append(Turn("tool", result.text))
            sample.media += [MediaRef("image", p) for p in result.images]
    return sample.validate()


def call(name: str, **arguments) -> str:
    return render_tool_call(name, arguments)


@pytest.fixture(scope="session")
def trajectories(registry, engine) -> dict[str, Sample]:
    item, other = engine.items[5], engine.items[11]
    image = [item["image"]]
    return {
        "two_turns": scripted(registry, "two", "<image>What does this cost?", image, [
            "<thinking>Search the photo.</thinking>\n" + call("image_search", image=1),
            f"<thinking>Top hit.</thinking>It costs ${item['price']}."]),
        "three_turns": scripted(registry, "three", "<image>Find this, then the other one.", image, [
            "<thinking>First the photo.</thinking>\n" + call("image_search", image=1),
            "<thinking>Now by name.</thinking>\n" + call("text_search", query=other["title"]),
            f"Found {other['id']}."]),
        # Text after the call: only the stop at </tool_call> keeps it out of the rollout.
        "stop": scripted(registry, "stop", "<image>Is this one in stock?", image, [
            call("image_search", image=1) + "\nWaiting for the search.", "Yes."]),
        "errors": scripted(registry, "errors", "Try the broken tools.", [], [
            '<tool_call>\n{"name": "text_search", "arguments": {"query": "mug"}\n</tool_call>',
            call("price_lookup", id="s1"), call("wait", seconds=5), "Sorry."]),
    }


def prompt_of(sample: Sample) -> Sample:
    """The conversation's system and user turns (and the user's media): what a rollout starts from."""
    user_images = sample.turns[1].content.count("<image>")
    return dataclasses.replace(sample, turns=sample.turns[:2], media=sample.media[:user_images])


def tiny_vision_model(seed: int = 0) -> OmniModel:
    """The tiny SigLIP + Qwen3 model without audio (tool rollouts see text and images only)."""
    torch.manual_seed(seed)
    return OmniModel(HFDecoder("tiny-qwen3"), vision=SigLIPEncoder("tiny-siglip"))


@pytest.fixture(scope="session")
def trained(trajectories):
    """(policy, stage) after training the tiny model until greedy decoding reproduces every scripted trajectory."""
    from valley3.policy import Policy
    from valley3.stages import AgenticSFTStage

    stage = AgenticSFTStage(tiny_vision_model(), warmup_steps=0, max_len=None, mask_failed_calls=False)
    batch = PadCollator(stage.processor.pad_id)([stage.processor(s) for s in trajectories.values()])
    targets, optimizer = batch.labels[:, 1:], torch.optim.AdamW(stage.model.parameters(), lr=1e-2)
    stage.model.train()
    for _ in range(300):
        logits = stage.logits(batch)[:, :-1]
        supervised = targets != -100
        if bool((logits.argmax(-1) == targets)[supervised].all()):  # teacher-forced argmax right everywhere
            break
        loss = torch.nn.functional.cross_entropy(logits[supervised], targets[supervised])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    else:
        raise AssertionError("the tiny model did not learn the scripted trajectories in 300 steps")
    stage.model.eval()
    return Policy(stage.model, stage.processor), stage
