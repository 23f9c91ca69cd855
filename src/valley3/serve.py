"""`valley3 serve`: an OpenAI-compatible chat-completions server over a valley3 checkpoint (judge, demos)."""

import argparse
import tempfile
import threading
import time
import uuid
from typing import Any

from valley3.data.media import MediaError
from valley3.data.openai_messages import MessageError, to_record
from valley3.data.processor import SampleError
from valley3.data.schema import SchemaError

# finish_reason of the policy -> OpenAI's ("eos" and a stop string both end as "stop").
_FINISH = {"eos": "stop", "stop": "stop", "length": "length"}


def _request_model():
    from pydantic import BaseModel, ConfigDict, Field

    class ChatRequest(BaseModel):
        """The fields of an OpenAI chat-completions request this server reads (others are accepted and ignored)."""

        model_config = ConfigDict(extra="allow")
        model: str | None = None
        messages: list[dict[str, Any]]
        temperature: float = Field(1.0, ge=0.0)
        top_p: float = Field(1.0, gt=0.0, le=1.0)
        top_k: int = Field(0, ge=0)  # vLLM's extension
        max_tokens: int | None = Field(None, ge=1)
        max_completion_tokens: int | None = Field(None, ge=1)
        n: int = Field(1, ge=1, le=64)
        stop: str | list[str] | None = None
        seed: int | None = None
        stream: bool = False

    return ChatRequest


def create_app(policy, model_name: str = "valley3", default_max_tokens: int = 256, max_tokens_limit: int = 4096,
               media_roots: list[str] | None = None):
    """The FastAPI app: POST /v1/chat/completions, GET /v1/models, GET /health.

    Requests run one at a time on the model (it is not thread-safe); each request's n samples share its media.

    Args:
        policy: a `valley3.policy.Policy`.
        model_name: the id /v1/models lists and responses carry.
        default_max_tokens: the answer budget when a request gives none.
        max_tokens_limit: the largest budget a request may ask for.
        media_roots: folders local media paths must lie in (None: any readable file).
    """
    from fastapi import FastAPI, HTTPException

    app, lock, ChatRequest = FastAPI(title="valley3"), threading.Lock(), _request_model()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "valley3"}]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> dict[str, Any]:  # sync: FastAPI runs it in a worker thread
        if request.stream:
            raise HTTPException(400, "stream=true is not supported; send stream=false")
        budget = request.max_completion_tokens or request.max_tokens or default_max_tokens
        if budget > max_tokens_limit:
            raise HTTPException(400, f"max_tokens {budget} exceeds this server's limit {max_tokens_limit}")
        stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
        with tempfile.TemporaryDirectory(prefix="valley3-serve-") as media_dir:
            try:
                record = to_record(request.messages, media_dir, media_roots)
                with lock:
                    (samples,) = policy.generate([record], n=request.n, max_new_tokens=budget,
                                                 temperature=request.temperature, top_p=request.top_p,
                                                 top_k=request.top_k, stop=stop, seed=request.seed)
                    prompt_tokens = len(policy.prompt_ids(record))
            except (MessageError, SchemaError, SampleError, MediaError) as err:
                raise HTTPException(400, str(err)) from None
        choices = [{"index": i, "message": {"role": "assistant", "content": c.text},
                    "finish_reason": _FINISH.get(c.finish_reason, "stop")} for i, c in enumerate(samples)]
        completion_tokens = sum(len(c.token_ids) for c in samples)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": model_name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}}

    return app


def main(argv: list[str] | None = None) -> None:
    """Load a checkpoint and serve it until interrupted."""
    parser = argparse.ArgumentParser(prog="valley3 serve", description=__doc__)
    parser.add_argument("--ckpt", required=True, help="a Lightning checkpoint of any valley3 stage")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default=None, help="default: cuda when available")
    parser.add_argument("--model-name", default="valley3", help="the model id clients send and /v1/models lists")
    parser.add_argument("--max-tokens", type=int, default=256, help="answer budget when a request gives none")
    parser.add_argument("--max-tokens-limit", type=int, default=4096, help="largest budget a request may ask for")
    parser.add_argument("--media-root", action="append", default=None,
                        help="only read local media under this folder (repeatable; default: any readable file)")
    args = parser.parse_args(argv)
    import torch
    import uvicorn

    from valley3.policy import Policy

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    policy = Policy.from_checkpoint(args.ckpt, device=device)
    app = create_app(policy, args.model_name, args.max_tokens, args.max_tokens_limit, args.media_root)
    print(f"valley3 serve: {args.ckpt} on http://{args.host}:{args.port}/v1 ({device})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
