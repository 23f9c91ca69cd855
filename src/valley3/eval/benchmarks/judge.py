"""Judges for eBay Item Intelligence: each predicted field is verifiable-correct, -incorrect or unverifiable."""

from __future__ import annotations

import json
import os
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from valley3.eval.metrics import EvalMetric, extract_json, flatten_json

VERDICTS = ("verifiable_correct", "verifiable_incorrect", "unverifiable")
SHARES = (*VERDICTS, "no_claims", "malformed")  # what the judge shares of an item-intelligence row split into
_PROMPT = """You check the answer of a model that read a product listing's images.
Question: {question}
Reference annotation of the listing (JSON): {reference}
Fields the model claimed, numbered:
{fields}
For each field say whether the reference can verify it and it is right ("verifiable_correct"), whether the
reference can verify it and it is wrong ("verifiable_incorrect"), or whether the reference cannot verify it
("unverifiable"). Reply with JSON only: {{"verdicts": [one verdict per field, in order]}}"""


class Judge(ABC):
    """Labels each predicted ``(key path, value)`` field of an answer with one of :data:`VERDICTS`."""

    @abstractmethod
    def judge(self, fields: Sequence[tuple[str, str]], reference: Mapping[str, Any], question: str) -> list[str]:
        """One verdict per field, in order."""


class RuleJudge(Judge):
    """The default judge, needing no model: a field whose key the reference annotates is verifiable (correct if
    its normalised value is among the reference's values for that key); any other field is unverifiable."""

    def judge(self, fields: Sequence[tuple[str, str]], reference: Mapping[str, Any], question: str) -> list[str]:
        known: dict[str, set[str]] = {}
        for key, value in flatten_json(reference):
            known.setdefault(key, set()).add(value)
        return [
            ("verifiable_correct" if value in known[key] else "verifiable_incorrect")
            if key in known
            else "unverifiable"
            for key, value in fields
        ]


class PromptJudge(Judge):
    """A language-model judge: asks for ``{"verdicts": [...]}``; a field it gives no valid verdict for (a reply
    that does not parse, a failed call) is judged by :class:`RuleJudge` instead and counted in ``fallbacks``."""

    def __init__(self) -> None:
        self.fallbacks = 0
        self._rule = RuleJudge()

    @abstractmethod
    def complete(self, prompt: str) -> str:
        """The judge model's reply to one prompt."""

    def judge(self, fields: Sequence[tuple[str, str]], reference: Mapping[str, Any], question: str) -> list[str]:
        if not fields:
            return []
        listed = "\n".join(f"{i + 1}. {key}: {value}" for i, (key, value) in enumerate(fields))
        prompt = _PROMPT.format(question=question, reference=json.dumps(reference, ensure_ascii=False), fields=listed)
        try:
            reply = extract_json(self.complete(prompt))
        except (OSError, ValueError, RuntimeError, LookupError, TypeError):  # an outage must not end a run
            reply = extract_json(None)
        said = reply.value.get("verdicts") if reply.ok else None
        said = said if isinstance(said, list) else []
        out = []
        for i, fallback in enumerate(self._rule.judge(fields, reference, question)):
            verdict = str(said[i]).strip().lower().replace("-", "_") if i < len(said) else None
            if verdict not in VERDICTS:
                self.fallbacks += 1
                verdict = fallback
            out.append(verdict)
        return out


class HTTPJudge(PromptJudge):
    """An OpenAI-compatible chat-completions endpoint (vLLM, SGLang, a hosted API) as the judge.

    Args:
        base_url: the API root, e.g. ``http://localhost:8000/v1``.
        model: the model name the endpoint serves.
        api_key_env: environment variable holding the API key (unset: no key is sent).
        timeout: seconds per request.
        max_tokens: longest reply.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_tokens: int = 512,
    ) -> None:
        super().__init__()
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env, self.timeout, self.max_tokens = model, api_key_env, timeout, max_tokens

    def complete(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": self.max_tokens,
        }
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)["choices"][0]["message"]["content"]


class LocalModelJudge(PromptJudge):
    """A local Hugging Face causal LM (a folder on disk; nothing is downloaded) as the judge, greedy decoding.

    Args:
        path: the model folder (weights and tokenizer).
        max_new_tokens: longest reply.
        device: where the judge runs.
    """

    def __init__(self, path: str, max_new_tokens: int = 256, device: str = "cpu") -> None:
        super().__init__()
        self.path, self.max_new_tokens, self.device = path, max_new_tokens, device
        self._model = self._tokenizer = None

    def complete(self, prompt: str) -> str:
        if self._model is None:  # loaded on the first call, so configs that name it build without weights
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self._model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
        tok = self._tokenizer
        if tok.chat_template:
            text = tok.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt
        ids = tok(text, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = self._model.generate(**ids, max_new_tokens=self.max_new_tokens, do_sample=False)
        return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


class JudgeShares(EvalMetric):
    """Shares of outputs per verdict, over every output: each output weighs 1, split evenly over its fields'
    verdicts; an output claiming no field weighs on ``no_claims``, a malformed one on ``malformed``. The shares
    sum to 1, so a few judged fields among many broken outputs never read as a high verifiable-correct share."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        self.add_state("weights", torch.zeros(len(SHARES), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("outputs", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("fields", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, outputs: Sequence[Sequence[str] | None]) -> None:
        """Args: per output, the verdicts of its fields, or ``None`` for a malformed output."""
        weights = [0.0] * len(SHARES)
        for verdicts in outputs:
            for share, weight in output_shares(verdicts).items():
                weights[SHARES.index(share)] += weight
        self.weights += torch.tensor(weights, dtype=torch.float64, device=self.weights.device)
        self.outputs += len(outputs)
        self.fields += sum(len(v) for v in outputs if v is not None)

    def compute(self) -> dict[str, Tensor]:
        """``<share>`` for each of :data:`SHARES` (NaN before any output), ``outputs`` and ``fields`` judged."""
        shares = self.weights / self.outputs if self.outputs > 0 else torch.full_like(self.weights, float("nan"))
        return {v: shares[i] for i, v in enumerate(SHARES)} | {"outputs": self.outputs, "fields": self.fields}


def output_shares(verdicts: Sequence[str] | None) -> dict[str, float]:
    """One output's weight per share: ``1 / len(verdicts)`` per field verdict, else all on ``no_claims`` (no
    field) or ``malformed`` (``None``)."""
    if verdicts is None:
        return {"malformed": 1.0}
    if not verdicts:
        return {"no_claims": 1.0}
    out: dict[str, float] = {}
    for v in verdicts:
        out[v] = out.get(v, 0.0) + 1 / len(verdicts)
    return out
