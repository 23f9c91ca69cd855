"""Where a judge runs: an OpenAI-compatible HTTP endpoint, a valley3 checkpoint, or a local HF causal LM."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from valley3.rewards.judge import JudgeBackend, Message

log = logging.getLogger(__name__)


class HTTPJudge(JudgeBackend):
    """A judge behind an OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, SGLang, `valley3 serve`).

    Each request is retried `retries` times with exponential back-off; one still failing gives None (the
    reward counts it as a failure). Requests of a batch go out `max_workers` at a time.

    Args:
        url: the API base, e.g. "http://127.0.0.1:8000/v1" ("/chat/completions" is appended).
        model: the model name sent in each request.
        timeout: seconds per request (connect, read and write each).
        retries: tries after the first one.
        backoff: seconds before the first retry; doubled each time.
        max_workers: requests in flight at once.
        api_key_env: environment variable holding a bearer token (None: no auth header).
    """

    def __init__(self, url: str, model: str = "valley3", timeout: float = 30.0, retries: int = 2,
                 backoff: float = 0.5, max_workers: int = 8, api_key_env: str | None = None):
        if retries < 0 or max_workers < 1:
            raise ValueError(f"need retries >= 0 and max_workers >= 1, got {retries} and {max_workers}")
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.model, self.retries, self.backoff, self.max_workers = model, retries, backoff, max_workers
        self.timeout, self.api_key_env = timeout, api_key_env
        self._client = None  # opened on first use: the backend stays copyable (hyperparameters are deep-copied)

    @property
    def client(self):
        if self._client is None:
            import httpx

            headers = {"Authorization": f"Bearer {os.environ[self.api_key_env]}"} if self.api_key_env else {}
            self._client = httpx.Client(timeout=self.timeout, headers=headers)
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # copies and pickles open their own connection

    def _one(self, messages: list[Message], max_tokens: int, temperature: float) -> str | None:
        import httpx

        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.client.post(self.endpoint, json=body)
                response.raise_for_status()
                content = response.json()["choices"][0]["message"]["content"]
                if isinstance(content, str):
                    return content
                error = TypeError(f"content is {type(content).__name__}, not text")
            except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as err:
                error = err
        log.debug("judge %s failed after %d tries: %r", self.endpoint, self.retries + 1, error)
        return None

    def complete(self, requests: Sequence[list[Message]], max_tokens: int, temperature: float) -> list[str | None]:
        with ThreadPoolExecutor(self.max_workers) as pool:
            return list(pool.map(lambda m: self._one(m, max_tokens, temperature), requests))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class PolicyJudge(JudgeBackend):
    """A valley3 checkpoint as the judge, loaded once on first use and run through the policy API.

    Args:
        ckpt: a Lightning checkpoint of any valley3 stage.
        device: where it runs ("cpu", "cuda", ...; default cuda when available).
        batch_size: requests per generation batch.
    """

    def __init__(self, ckpt: str, device: str | None = None, batch_size: int = 8):
        self.ckpt, self.batch_size = ckpt, batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._policy = None

    @property
    def policy(self):
        if self._policy is None:
            from valley3.policy import Policy

            self._policy = Policy.from_checkpoint(self.ckpt, device=self.device)
        return self._policy

    def complete(self, requests: Sequence[list[Message]], max_tokens: int, temperature: float) -> list[str | None]:
        from valley3.data.openai_messages import to_record

        out: list[str | None] = []
        with tempfile.TemporaryDirectory(prefix="valley3-judge-") as media_dir:  # decoded data URLs, if any
            for start in range(0, len(requests), self.batch_size):
                # OpenAI messages: image/audio/video parts (local paths or data URLs) reach a multimodal judge
                records = [to_record(m, media_dir) for m in requests[start : start + self.batch_size]]
                groups = self.policy.generate(records, n=1, max_new_tokens=max_tokens, temperature=temperature, seed=0)
                out += [group[0].text for group in groups]
        return out


class HFJudge(JudgeBackend):
    """A Hugging Face causal LM from a local folder as the judge (text only), greedy or sampled.

    Args:
        path: a local model folder (nothing is downloaded).
        device: where it runs (default cuda when available).
        dtype: "float32", "bfloat16" or "float16".
        batch_size: requests per generation batch (left-padded).
    """

    def __init__(self, path: str, device: str | None = None, dtype: str = "float32", batch_size: int = 8):
        self.path, self.dtype, self.batch_size = path, getattr(torch, dtype), batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True, padding_side="left")
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True, dtype=self.dtype)
            self._loaded = (tokenizer, model.to(self.device).eval())
        return self._loaded

    def _text(self, tokenizer, messages: list[Message]) -> str:
        if tokenizer.chat_template:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant:"

    @torch.inference_mode()
    def complete(self, requests: Sequence[list[Message]], max_tokens: int, temperature: float) -> list[str | None]:
        tokenizer, model = self._load()
        out: list[str | None] = []
        for start in range(0, len(requests), self.batch_size):
            texts = [self._text(tokenizer, m) for m in requests[start : start + self.batch_size]]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            ids = model.generate(**batch, max_new_tokens=max_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
            out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        return out
