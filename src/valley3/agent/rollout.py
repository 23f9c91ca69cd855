"""Multi-turn tool rollouts over the policy API: generate until </tool_call> or an answer, run the tool, go on.

A trajectory's ids are the chat template's rendering of its conversation, built turn by turn:

    prompt ids (system, user, media, "<|im_start|>assistant\\n")              not in the completion
    assistant text ... </tool_call>  <|im_end|>                             loss mask 1 (the model's turn)
    \\n<|im_start|>user\\n<tool_response>\\n ... <image run> ...\\n</tool_response><|im_end|>\\n<|im_start|>assistant\\n
                                                                            loss mask 0 (the environment's)
    assistant text ... final answer  <|im_end|>                             loss mask 1

Every turn is generated from the template's rendering of the conversation so far (`Policy.generate` takes
conversations), so an assistant turn enters the ids as the template tokenizes its text; a sampled id sequence that
tokenizes differently is counted in `Trajectory.retokenized`. Before each turn the rollout checks that the new
rendering extends the ids it holds (`ContinuityError` otherwise): what the model saw is what training scores.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from valley3.agent.tools import FAILED, ToolContext, ToolRegistry, ToolResult, parse_tool_calls
from valley3.agent.trajectory import ContinuityError, Trajectory
from valley3.data.processor import OmniProcessor, control_pattern
from valley3.data.schema import MEDIA_TAGS, MediaRef, Sample, Turn
from valley3.policy import Policy
from valley3.policy.prompts import as_sample

# Documented messages of a rollout's own limits (tool failures use the messages of `valley3.agent.tools`).
CALL_LIMIT = "Error: the limit of {calls} tool calls is reached; answer without tools."
TURN_LIMIT = "Error: the limit of {turns} assistant turns was reached before an answer."
TOKEN_LIMIT = "Error: the limit of {tokens} tokens was reached before an answer."
INVALID_OUTPUT = "Error: the model wrote {what}, which only the template may place; its turn is cut there."

@dataclass
class _State:
    trajectory: Trajectory
    ids: list[int]  # prompt + completion ids so far

    @property
    def done(self) -> bool:
        return bool(self.trajectory.finish)


class AgentRollout:
    """Runs conversations with tools: each assistant turn is generated until `</tool_call>` (kept) or the end of the
    turn; the calls in it run (with their timeouts) and their results return as a tool turn; the loop ends with an
    answer (a turn without a call) or a limit. Failures never raise: the model gets the documented message.

    Args:
        tools: the tools the model may call.
        max_turns: assistant turns per conversation; a call in the last one ends it as "max_turns".
        max_tool_calls: calls run per conversation; later calls get CALL_LIMIT as their result.
        max_new_tokens: tokens per assistant turn.
        max_tokens: tokens of the whole completion (assistant and tool tokens after the prompt).
        temperature: sampling temperature (0 = greedy).
        top_p: nucleus mass (1 = off).
        top_k: top-k (0 = off).
    """

    def __init__(self, tools: ToolRegistry, max_turns: int = 4, max_tool_calls: int = 3, max_new_tokens: int = 256,
                 max_tokens: int = 2048, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0):
        if max_turns < 1 or max_new_tokens < 1:
            raise ValueError("max_turns and max_new_tokens must be at least 1")
        self.tools, self.max_turns, self.max_tool_calls = tools, max_turns, max_tool_calls
        self.max_new_tokens, self.max_tokens = max_new_tokens, max_tokens
        self.sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k)

    def __call__(self, policy: Policy, prompts: Sequence[Sample | dict], n: int = 1,
                 seed: int | None = None) -> list[list[Trajectory]]:
        """`n` trajectories per prompt, [prompt][sample]. With a seed, the same call gives the same trajectories."""
        stop = (self.tools_end(policy),)
        samples = [as_sample(p, i) for i, p in enumerate(prompts)]
        states = []
        for sample in samples:
            ids = policy.prompt_ids(sample)
            # A trailing assistant turn is the reference answer: the prompt keeps it (for rewards), the rollout not.
            turns = sample.turns[:-1] if sample.turns[-1].role == "assistant" else sample.turns
            for _ in range(n):
                start = dataclasses.replace(sample, turns=list(turns), media=list(sample.media), meta=dict(sample.meta))
                states.append(_State(Trajectory(sample, start, list(ids)), list(ids)))
        for turn in range(self.max_turns):
            active = [s for s in states if not s.done]
            for s in active:
                if len(s.trajectory.token_ids) >= self.max_tokens:
                    self._finish(s, "max_tokens", TOKEN_LIMIT.format(tokens=self.max_tokens))
            active = [s for s in active if not s.done]
            if not active:
                break
            # A call per remaining budget, so no turn outruns the token limit; turn 0 shares each prompt's media.
            budgets = {s_i: min(self.max_new_tokens, self.max_tokens - len(s.trajectory.token_ids))
                       for s_i, s in enumerate(active)}
            for g, budget in enumerate(sorted(set(budgets.values()))):
                group = [s for s_i, s in enumerate(active) if budgets[s_i] == budget]
                outs = self._generate(policy, group, turn, n, budget, stop, _seed(seed, turn, g))
                for state, out in zip(group, outs):
                    self._step(policy, state, out, turn, budget)
        tokenizer = policy.processor.tokenizer
        for s in states:
            s.trajectory.text = tokenizer.decode(s.trajectory.token_ids, skip_special_tokens=False)
        return [[s.trajectory for s in states[i * n:(i + 1) * n]] for i in range(len(samples))]

    @staticmethod
    def tools_end(policy: Policy) -> str:
        return policy.processor.template.tokens.tool_call_end

    def _generate(self, policy, group, turn, n, budget, stop, seed):
        if turn == 0 and len(group) % n == 0 and all(not s.trajectory.turns for s in group):
            prompts = [s.trajectory.sample for s in group[::n]]  # every prompt's n states are together, in order
            return [c for row in policy.generate(prompts, n=n, max_new_tokens=budget, stop=stop, seed=seed,
                                                 **self.sampling) for c in row]
        prompts = [s.trajectory.sample for s in group]
        return [row[0] for row in policy.generate(prompts, max_new_tokens=budget, stop=stop, seed=seed,
                                                  **self.sampling)]

    def _step(self, policy: Policy, state: _State, out, turn: int, budget: int) -> None:
        """Append a generated turn; run its calls, or end the trajectory."""
        t, processor = state.trajectory, policy.processor
        text, bad = _cut_reserved(out.text, processor)
        t.turns += 1
        self._append_assistant(state, text, out, processor)
        if bad:
            return self._finish(state, "invalid", INVALID_OUTPUT.format(what=bad))
        calls = parse_tool_calls(text, processor.template.tokens)
        if out.finish_reason == "length":
            limit = budget < self.max_new_tokens  # cut by the conversation's budget, not the turn's
            return self._finish(state, "max_tokens" if limit else "length",
                                TOKEN_LIMIT.format(tokens=self.max_tokens) if limit else None)
        if not calls:
            return self._finish(state, "answer", None)
        if turn == self.max_turns - 1:
            return self._finish(state, "max_turns", TURN_LIMIT.format(turns=self.max_turns))
        for call in calls:
            if t.tool_calls >= self.max_tool_calls:
                result = ToolResult(CALL_LIMIT.format(calls=self.max_tool_calls), error="call_limit")
            else:
                t.tool_calls += 1
                result = self.tools.run(call, ToolContext([m.path for m in t.sample.media if m.kind == "image"]))
                result = _checked(result, call.name, policy.processor)
            if result.error:
                t.errors.append(result.error)
                t.messages.append(result.text)
            t.sample.turns.append(Turn("tool", result.text))
            t.sample.media += [MediaRef("image", path) for path in result.images]
        self._append_observation(state, policy)

    def _append_assistant(self, state: _State, text: str, out, processor: OmniProcessor) -> None:
        t = state.trajectory
        ids = processor.tokenizer(text, add_special_tokens=False)["input_ids"]
        same = ids == list(out.token_ids)
        t.retokenized += not same
        t.sample.turns.append(Turn("assistant", text))
        self._extend(state, ids + [processor.eos_id], 1, list(out.logprobs) + [0.0] if same else None)

    def _append_observation(self, state: _State, policy: Policy) -> None:
        """The tool turn(s) and the next generation prompt, exactly as the template renders them."""
        rendered = policy.prompt_ids(state.trajectory.sample)
        if rendered[: len(state.ids)] != state.ids:
            at = next(i for i, (a, b) in enumerate(zip(rendered, state.ids)) if a != b)
            raise ContinuityError(f"sample {state.trajectory.sample.id!r}: re-rendering after a tool turn changes "
                                  f"token {at} of the conversation")
        self._extend(state, rendered[len(state.ids):], 0, None)

    @staticmethod
    def _extend(state: _State, ids: list[int], mask: int, logprobs: list[float] | None) -> None:
        t = state.trajectory
        t.token_ids += ids
        t.loss_mask += [mask] * len(ids)
        t.logprobs += logprobs if logprobs is not None and len(logprobs) == len(ids) else [0.0] * len(ids)
        state.ids += ids

    @staticmethod
    def _finish(state: _State, finish: str, message: str | None) -> None:
        t = state.trajectory
        t.finish = finish
        if finish != "answer":
            t.errors.append(finish)
        if message:
            t.messages.append(message)


def _reserved(text: str, processor: OmniProcessor) -> tuple[int, str] | None:
    """(position, string) of the first media tag or control token in `text` (a media tag would ask for media that
    do not exist; a control token, e.g. a placeholder or <|im_end|>, is the template's alone), or None."""
    tag = re.search("|".join(map(re.escape, MEDIA_TAGS.values())), text)
    control = control_pattern(processor.tokenizer, processor.template.tokens).search(text)
    found = [m for m in (tag, control) if m is not None]
    if not found:
        return None
    first = min(found, key=lambda m: m.start())
    return first.start(), first.group()


def _cut_reserved(text: str, processor: OmniProcessor) -> tuple[str, str | None]:
    """The text up to its first media tag or control token, and that string (None when there is none)."""
    hit = _reserved(text, processor)
    return (text, None) if hit is None else (text[: hit[0]], hit[1])


def _checked(result: ToolResult, name: str, processor: OmniProcessor) -> ToolResult:
    """A result whose text holds a control token becomes a FAILED message (rendered, it would end the turn early or
    ask for media); media tags were checked against its images by the registry."""
    hit = _reserved(result.text.replace(MEDIA_TAGS["image"], ""), processor)
    if hit is None:
        return result
    return ToolResult(FAILED.format(name=name, detail=f"its result holds the reserved string {hit[1]}"), error="failed")


def _seed(seed: int | None, turn: int, group: int) -> int | None:
    if seed is None:
        return None
    return int(np.random.SeedSequence([seed, turn, group]).generate_state(1)[0])
