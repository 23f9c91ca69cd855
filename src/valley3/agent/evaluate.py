"""Agent evaluation on held-out questions: how often the model searches, and its accuracy with and without tools."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from valley3.agent.rollout import AgentRollout
from valley3.agent.trajectory import Trajectory
from valley3.agent.tools import ToolRegistry
from valley3.data.schema import Sample
from valley3.policy import Policy
from valley3.eval.metrics.match import match_answer


def split_trajectory(sample: Sample) -> tuple[Sample, str]:
    """A recorded conversation -> (its prompt: the turns before the first assistant turn, with their media; the
    reference: the last assistant turn without its thinking block)."""
    first = next(i for i, t in enumerate(sample.turns) if t.role == "assistant")
    turns = sample.turns[:first]
    images = sum(t.content.count("<image>") for t in turns)
    prompt = dataclasses.replace(sample, turns=turns, media=[m for m in sample.media if m.kind == "image"][:images])
    reference = re.sub(r"<thinking>.*?</thinking>", "", sample.turns[-1].content, flags=re.S).strip()
    return prompt, reference


def _batched(rollout: AgentRollout, policy: Policy, prompts: list[Sample], batch_size: int) -> list[Trajectory]:
    out = []
    for i in range(0, len(prompts), batch_size):
        out += [group[0] for group in rollout(policy, prompts[i:i + batch_size], seed=0)]
    return out


def evaluate_agent(policy: Policy, tools: ToolRegistry, samples: Sequence[Sample], max_turns: int = 4,
                   max_new_tokens: int = 128, batch_size: int = 16) -> dict[str, Any]:
    """Greedy rollouts on every sample's prompt, scored by exact match against its reference answer.

    Samples whose `meta["kind"]` is "search" are questions only the catalog answers; the others ("direct") are
    answered by the picture. "Without tools" is the same model whose every call is refused with the call-limit
    message (`max_tool_calls=0`), so it must answer from what it knows.
    """
    pairs = [split_trajectory(s) for s in samples]
    kinds = [s.meta.get("kind", "search") for s in samples]
    prompts = [p for p, _ in pairs]
    with_tools = _batched(AgentRollout(tools, max_turns, max_new_tokens=max_new_tokens, temperature=0), policy,
                          prompts, batch_size)
    without = _batched(AgentRollout(tools, max_turns, max_tool_calls=0, max_new_tokens=max_new_tokens,
                                    temperature=0), policy, prompts, batch_size)
    rows = []
    for (prompt, reference), kind, t, u in zip(pairs, kinds, with_tools, without):
        rows.append({"id": prompt.id, "kind": kind, "reference": reference, "answer": t.answer,
                     "called": t.tool_calls > 0, "right": _right(t.answer, reference),
                     "answer_without_tools": u.answer,
                     "right_without_tools": _right(u.answer, reference),
                     "turns": t.turns, "failed_calls": t.failed_calls, "finish": t.finish})
    return {"summary": _summary(rows), "rows": rows}


def _right(answer: str | None, reference: str) -> float:
    """Exact match after normalisation (case, punctuation, articles), as the rule rewards score it."""
    return float(answer is not None and match_answer(answer, reference)[0])


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    def mean(values) -> float:
        values = list(values)
        return sum(values) / len(values) if values else float("nan")

    search = [r for r in rows if r["kind"] == "search"]
    direct = [r for r in rows if r["kind"] != "search"]
    return {"search_questions": len(search), "tool_call_rate": mean(r["called"] for r in search),
            "accuracy_with_tools": mean(r["right"] for r in search),
            "accuracy_without_tools": mean(r["right_without_tools"] for r in search),
            "answered_without_tools": mean(r["answer_without_tools"] is not None for r in search),
            "direct_questions": len(direct), "direct_call_rate": mean(r["called"] for r in direct),
            "direct_accuracy": mean(r["right"] for r in direct),
            "failed_calls_per_question": mean(r["failed_calls"] for r in rows)}
