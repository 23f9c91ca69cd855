"""The engine over HTTP: a `/retrieve` endpoint in the Search-R1/verl schema (FastAPI) and a client with the
engine's `search` signature, so a rollout uses the engine in-process or remotely without a change."""

from __future__ import annotations

import base64
import contextlib
import io
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException
from PIL import Image
from pydantic import BaseModel

from valley3.agent.search.engine import MODES, Hit, SearchEngine
from valley3.data.media import MediaError
from valley3.data.media.image import load_image


class RetrieveRequest(BaseModel):
    """Search-R1's request (`queries`, `topk`, `return_scores`) plus two optional valley3 fields: `mode` and
    `images` (base64-encoded image files, paired with `queries` by position; use "" for a query without one)."""

    queries: list[str] = []
    topk: int | None = None
    return_scores: bool = False
    mode: str | None = None
    images: list[str] | None = None


def create_app(engine: SearchEngine, topk: int = 3, mode: str = "auto") -> FastAPI:
    """A FastAPI app serving `engine`: POST /retrieve, GET /health.

    Args:
        engine: the loaded engine.
        topk: results per query when a request gives no `topk` (Search-R1's server default is 3).
        mode: search mode when a request gives none.
    """
    app = FastAPI(title="valley3 catalog search")
    lock = threading.Lock()  # one query at a time: results must not depend on what else is running

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "items": len(engine.ids)}

    @app.post("/retrieve")
    def retrieve(request: RetrieveRequest) -> dict[str, Any]:
        images = request.images or []
        count = max(len(request.queries), len(images))
        results = []
        for i in range(count):
            text = request.queries[i] if i < len(request.queries) else ""
            image = _decode(images[i]) if i < len(images) and images[i] else None
            try:
                with lock:
                    hits = engine.search(text or None, image, request.mode or mode, request.topk or topk)
            except ValueError as exc:  # a mode the query does not allow: the client's error, not the server's
                raise HTTPException(status_code=422, detail=f"query {i}: {exc}") from None
            results.append([{"document": h.document, "score": h.score} if request.return_scores else h.document
                            for h in hits])
        return {"result": results}

    return app


def _decode(data: str) -> Image.Image:
    """An uploaded image, read by the same loader as a local file, so HTTP and in-process answers agree."""
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError:
        raise HTTPException(status_code=422, detail="images must be base64-encoded image files") from None
    with tempfile.NamedTemporaryFile(suffix=".img") as f:
        f.write(raw)
        f.flush()
        try:
            return load_image(f.name)
        except MediaError as exc:
            raise HTTPException(status_code=422, detail=f"unreadable image: {exc.reason}") from None


class SearchClient:
    """A remote engine: `search` takes and returns what `SearchEngine.search` does.

    Args:
        url: the server's base URL, e.g. "http://127.0.0.1:8000".
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.client = httpx.Client(timeout=timeout)

    def search(self, text: str | None = None, image: str | os.PathLike | Image.Image | None = None,
               mode: str = "auto", k: int = 5) -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; expected one of {MODES}")
        body = {"queries": [text or ""], "topk": k, "return_scores": True, "mode": mode}
        if image is not None:
            body["images"] = [_encode(image)]
        response = self.client.post(f"{self.url}/retrieve", json=body)
        if response.status_code == 422:
            raise ValueError(f"search server rejected the query: {response.json().get('detail')}")
        response.raise_for_status()
        return [Hit(r["document"]["id"], r["score"], r["document"]) for r in response.json()["result"][0]]


def _encode(image: str | os.PathLike | Image.Image) -> str:
    if isinstance(image, Image.Image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
    return base64.b64encode(Path(image).read_bytes()).decode("ascii")


def serve(engine: SearchEngine, host: str = "127.0.0.1", port: int = 8000, **app_kwargs: Any) -> None:
    """Serve `engine` until interrupted."""
    uvicorn.run(create_app(engine, **app_kwargs), host=host, port=port, log_level="warning")


@contextlib.contextmanager
def serving(engine: SearchEngine, host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any) -> Iterator[str]:
    """Serve `engine` on a background thread (port 0: a free one) and yield its URL; stops on exit."""
    config = uvicorn.Config(create_app(engine, **app_kwargs), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="search-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the search server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(10)
