"""The one cached sampling loop: prefill the prompts once, share them across samples, pick a token per step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper

from valley3.data.batch import Media

# (rows, their new tokens) -> for each row, whether a stop condition outside the loop (a stop string) ends it now.
OnTokens = Callable[[list[int], list[int]], list[bool]]


@dataclass
class DecodeState:
    """Where each row of a cached decode stands: its KV cache, attention mask and next position id."""

    cache: Cache
    attention_mask: torch.Tensor  # [R, L] 1 = a real token (prompts are left-padded)
    next_position: torch.Tensor  # [R] the position id of the row's next token (TM-RoPE: its next temporal id)

    def repeat(self, n: int) -> None:
        """Each row becomes n consecutive rows that share its prompt (its media were encoded once)."""
        self.cache.batch_repeat_interleave(n)
        self.attention_mask = self.attention_mask.repeat_interleave(n, dim=0)
        self.next_position = self.next_position.repeat_interleave(n, dim=0)

    def select(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (finished rows leave the batch, so their compute stops)."""
        self.cache.batch_select_indices(rows)
        self.attention_mask, self.next_position = self.attention_mask[rows], self.next_position[rows]

    def advance(self) -> torch.Tensor:
        """Append one token to every row; returns the position ids [R] that token takes."""
        positions = self.next_position
        self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones(len(positions), 1)], 1)
        self.next_position = positions + 1
        return positions


@dataclass
class Sampling:
    """How the next token is picked.

    Args:
        max_new_tokens: the longest continuation.
        temperature: logits are divided by it; 0 = greedy (then log-probs are under the plain softmax).
        top_k: keep the k likeliest tokens (0 = off).
        top_p: keep the smallest set of tokens whose mass reaches p (1 = off).
        eos_ids: tokens that end a row (not kept in its output).
        min_new_tokens: the eos ids (and `early_banned`) are masked out before this many tokens.
        generator: the random stream of the draws (None: torch's global one).
        early_banned: more ids masked out before `min_new_tokens` (e.g. a thinking marker where an answer must
            start).
        banned: ids never drawn (a policy bans its media placeholders: a completion fed back to the model must not
            claim media it has none of). Log-probs stay the model's own, as recomputing them gives (GRPO compares
            the two); the early bans instead renormalise them, as budget forcing's answers are never trained on.
    """

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    eos_ids: tuple[int, ...] = ()
    min_new_tokens: int = 0
    generator: torch.Generator | None = None
    early_banned: tuple[int, ...] = ()
    banned: tuple[int, ...] = ()

    def __post_init__(self):
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_new_tokens < 0:
            raise ValueError(f"invalid sampling settings: {self}")

    def pick(self, logits: torch.Tensor, step: int, rows: torch.Tensor, total: int,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens [R] and their log-probs [R] under softmax(logits / temperature), before top-k/top-p (fp32).

        `rows` are the result rows (of `total`) that `logits` belong to. Each step draws one uniform number per
        result row, live or ended, and samples by inverse CDF: a row's draws depend only on the random stream and
        its row index, never on which other rows have ended.
        """
        logits = logits.float()
        if step < self.min_new_tokens and (self.eos_ids or self.early_banned):
            logits[:, list(self.eos_ids + self.early_banned)] = float("-inf")
        allowed = logits
        if self.banned:
            allowed = logits.clone()
            allowed[:, list(self.banned)] = float("-inf")
        if self.temperature == 0:
            tokens = allowed.argmax(-1)
            return tokens, logits.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)
        scaled = logits / self.temperature
        filtered = allowed / self.temperature
        if self.top_k:
            filtered = TopKLogitsWarper(self.top_k)(None, filtered)
        if self.top_p < 1:
            filtered = TopPLogitsWarper(self.top_p)(None, filtered)
        cdf = filtered.softmax(-1).cumsum(-1)
        uniform = torch.rand(total, generator=self.generator, device=logits.device)[rows]
        # 1 - u lies in (0, 1]: the first token whose cumulative mass reaches it has a non-zero probability.
        tokens = torch.searchsorted(cdf, (1 - uniform[:, None]) * cdf[:, -1:]).squeeze(-1).clamp(max=cdf.shape[-1] - 1)
        return tokens, scaled.log_softmax(-1).gather(-1, tokens[:, None]).squeeze(-1)


@dataclass
class Decoded:
    """One generated row: its tokens (an ending eos left out), their log-probs, and why it ended."""

    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "length"  # "eos" | "stop" | "length"


@torch.no_grad()
def decode(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, media: Media | None,
           sampling: Sampling, n: int = 1, on_tokens: OnTokens | None = None,
           sample_ids: Sequence[str] | None = None) -> list[Decoded]:
    """Continue left-padded prompts; rows r*n .. r*n+n-1 of the result continue prompt r.

    `model` is an OmniModel (`prefill` runs the prompts and their media once, `decode_step` one token per row).
    Rows end at an eos id, when `on_tokens` says so (reason "stop"), or after `max_new_tokens` (reason "length");
    an ended row leaves the batch and its cache rows are dropped.
    """
    out = [Decoded() for _ in range(input_ids.shape[0] * n)]
    if sampling.max_new_tokens == 0:
        return out
    logits, state = model.prefill(input_ids, attention_mask, media, sample_ids)
    if n > 1:
        state.repeat(n)
        logits = logits.repeat_interleave(n, dim=0)
    rows = list(range(len(out)))  # the result row of each batch row still decoding
    index = torch.arange(len(out), device=logits.device)
    eos = set(sampling.eos_ids)
    for step in range(sampling.max_new_tokens):
        tokens, logprobs = sampling.pick(logits, step, index, len(out))
        kept_rows, kept_tokens, live = [], [], []
        for i, (row, token, logprob) in enumerate(zip(rows, tokens.tolist(), logprobs.tolist())):
            if token in eos:
                out[row].finish_reason = "eos"
                continue
            out[row].token_ids.append(token)
            out[row].logprobs.append(logprob)
            kept_rows.append(row)
            kept_tokens.append(token)
            live.append(i)
        stops = on_tokens(kept_rows, kept_tokens) if on_tokens is not None and kept_rows else [False] * len(live)
        for row, stop in zip(kept_rows, stops):
            if stop:
                out[row].finish_reason = "stop"
        live = [i for i, stop in zip(live, stops) if not stop]
        if not live or step + 1 == sampling.max_new_tokens:
            break
        if len(live) < len(rows):
            keep = torch.tensor(live, device=tokens.device)
            state.select(keep)
            tokens, rows, index = tokens[keep], [rows[i] for i in live], index[keep]
        logits = model.decode_step(tokens, state)
    return out


@torch.no_grad()
def generate_ids(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int = 64, *,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
                 eos_token_id: int | Sequence[int] | None = None, pad_token_id: int | None = None,
                 min_new_tokens: int = 0, generator: torch.Generator | None = None,
                 media: Media | None = None, sample_ids: Sequence[str] | None = None) -> torch.Tensor:
    """`decode` as a padded tensor [B, longest]: greedy unless `do_sample` (then torch's global random stream unless
    `generator`); a row that ends keeps its eos id, then `pad_token_id` (default: the eos id)."""
    eos = () if eos_token_id is None else tuple(eos_token_id) if isinstance(eos_token_id, Sequence) else (eos_token_id,)
    sampling = Sampling(max_new_tokens, temperature if do_sample else 0.0, top_k, top_p, eos, min_new_tokens, generator)
    rows = decode(model, input_ids, attention_mask, media, sampling, sample_ids=sample_ids)
    ids = [r.token_ids + ([eos[0]] if r.finish_reason == "eos" else []) for r in rows]
    pad = pad_token_id if pad_token_id is not None else (eos[0] if eos else 0)
    out = torch.full((len(ids), max(map(len, ids))), pad, dtype=torch.long, device=input_ids.device)
    for row, tokens in enumerate(ids):
        out[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return out
