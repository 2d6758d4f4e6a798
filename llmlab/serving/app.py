"""The server: routes, the API key, the web page's files, and the engine thread's start and stop.

    GET  /health                      liveness (no key needed)
    GET  /v1/models, /v1/models/ID    the served model (and the embedder)
    POST /v1/chat/completions         chat, tools, streaming; llmlab extras: top_k, min_p, retrieval
    POST /v1/completions              plain text completion
    POST /v1/embeddings               sentence embeddings (MiniLM by default)
    POST /v1/llmlab/next-token        the playground's next-token distribution at each sampling filter
    GET/POST /v1/llmlab/rankings      the feedback page's ranking file
    GET  /v1/llmlab/info              what the web page needs to know (model, store, limits)
    GET  /, /static/{app.js,style.css} the web page (no build step, no CDN)

Security, in order, for every request: the Host header must name this machine when the server listens on
loopback only (a web page elsewhere cannot reach it through DNS rebinding); with an API key every route but
/health needs `Authorization: Bearer KEY` or the web page's session cookie (set by /login, HttpOnly,
SameSite=Strict, an HMAC of the key rather than the key); a POST must be JSON (`Content-Type:
application/json`, which a cross-site form cannot send without a CORS preflight this server never grants).
Static files come from a fixed list, never from a path in the request.
Tests: tests/serving/test_serve_security.py, tests/serving/test_serve_openai_client.py, tests/serving/test_serve_browser.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl

from llmlab import __version__
from llmlab.errors import ConfigError, LlmlabError
from llmlab.serving import api
from llmlab.serving import bodies as rq
from llmlab.serving.config import ServeConfig
from llmlab.serving.feedback import RankingFile
from llmlab.serving.http import HTTPError, HTTPServer, Limits, Request, Response, StreamResponse
from llmlab.serving.scheduler import Scheduler
from llmlab.serving.tools import ToolCalling, tool_calling

STATIC = {
    "app.js": "text/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
    "login.html": "text/html",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
COOKIE = "llmlab_session"
Route = Callable[[Request], Awaitable[Response | StreamResponse]]


def thread_count(policy: str) -> int:
    """PyTorch threads for the engine thread: `all` cores (the server owns the machine), `spare-one`, or N."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    if policy == "all":
        return cores
    if policy == "spare-one":
        return max(1, cores - 1)
    return int(policy)


class Server:
    """An OpenAI-compatible server over one engine (and optionally a RAG store and an embedder).

    Args:
        engine: an `llmlab.generation.Engine`.
        model_id: the name clients send as `model`.
        store: an open `llmlab.rag.Store` for retrieval answers (its embedder also serves /v1/embeddings).
        embedder: a loaded embedder, or None to load `embedder_name` on the first embeddings request.
        prefix_embeds: (P, H) virtual tokens put before every prompt (the active prompt-tuning adapter's).
    """

    def __init__(
        self,
        engine: Any,
        config: ServeConfig | None = None,
        model_id: str = "model",
        store: Any = None,
        embedder: Any = None,
        embedder_name: str = "minilm-l6",
        tools: ToolCalling | None = None,
        prefix_embeds: Any = None,
    ):
        self.engine, self.config, self.model_id = engine, config or ServeConfig(), model_id
        self.prefix_embeds = prefix_embeds
        self.store, self._embedder, self.embedder_name = store, embedder, embedder_name
        if store is not None and embedder is None:
            self.embedder_name = store.backend.embedder()[0] if store.backend.embedder() else embedder_name
        self.tool_calling = tools or tool_calling(virtual_tokens=prefix_embeds is not None)
        self.rankings = RankingFile(self.config.rankings)
        self.scheduler = Scheduler(
            engine, self.config.max_batch, self.config.max_waiting, self.config.prefill_tokens
        )
        self.fingerprint = f"llmlab-{__version__}"
        self.created = int(time.time())
        self.threads = 0
        timeout = self.config.request_timeout
        limits = Limits(
            max_body_bytes=self.config.max_body_bytes, head_timeout=timeout, body_timeout=3 * timeout
        )
        self.http = HTTPServer(self.handle, self.config.host, self.config.port, limits)
        self._session = hmac.new(
            (self.config.api_key or "").encode(), b"llmlab-web-session", hashlib.sha256
        ).hexdigest()
        self.routes: dict[tuple[str, str], Route] = {
            ("GET", "/health"): self._health,
            ("GET", "/v1/models"): self._models,
            ("POST", "/v1/chat/completions"): lambda r: api.chat_completions(self, r.json()),
            ("POST", "/v1/completions"): lambda r: api.completions(self, r.json()),
            ("POST", "/v1/embeddings"): lambda r: api.embeddings(self, r.json()),
            ("POST", "/v1/llmlab/next-token"): self._next_token,
            ("GET", "/v1/llmlab/rankings"): self._rankings,
            ("POST", "/v1/llmlab/rankings"): self._rank,
            ("GET", "/v1/llmlab/info"): self._info,
            ("POST", "/login"): self._login,
        }

    # -- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.scheduler.start(self._engine_thread_setup)
        await self.http.start()

    async def close(self) -> None:
        await self.http.close()
        await asyncio.to_thread(self.scheduler.stop)

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"http://{host}:{self.http.port}"

    def _engine_thread_setup(self) -> None:
        import torch

        torch.set_num_threads(thread_count(self.config.threads))
        self.engine.threads.hold()  # the server owns the machine: --threads, not the load, decides
        self.threads = torch.get_num_threads()

    # -- the request path -------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response | StreamResponse:
        self._check_host(request)
        path = request.path.rstrip("/") or "/"
        if request.method == "GET" and (path == "/" or path.startswith("/static/")):
            return self._static(request, path)
        route = self.routes.get((request.method, path))
        if route is None and request.method == "GET" and path.startswith("/v1/models/"):
            route = self._model
        if route is None:
            known = any(p == path for _, p in self.routes)
            if known:
                raise HTTPError(405, f"{request.method} is not allowed on {path}")
            raise HTTPError(404, f"no route {request.method} {path}", code="not_found")
        if path != "/health" and path != "/login":
            self._authorize(request)
        if request.method == "POST" and path != "/login":
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                raise HTTPError(
                    415, f"send the body as JSON with Content-Type: application/json, not {kind or 'none'!r}"
                )
        return await route(request)

    def _check_host(self, request: Request) -> None:
        if not self.config.loopback:
            return
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name not in ("localhost", "127.0.0.1", "[::1]") and not name.startswith("127."):
            raise HTTPError(
                400, f"Host {host[:100]!r} is not this machine; use http://127.0.0.1:{self.http.port}"
            )

    def _authorize(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        if given.lower().startswith("bearer ") and hmac.compare_digest(
            given[7:].strip().encode(), key.encode()
        ):
            return
        if hmac.compare_digest(_cookie(request, COOKIE).encode(), self._session.encode()):
            return
        message = "missing API key: send Authorization: Bearer KEY" if not given else "wrong API key"
        raise HTTPError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    def _static(self, request: Request, path: str) -> Response:
        name = "index.html" if path == "/" else path[len("/static/") :]
        if name not in STATIC or name == "login.html":
            raise HTTPError(404, f"no file {path}", code="not_found")
        try:
            self._authorize(request)
        except HTTPError:
            if name != "index.html":
                raise
            name = "login.html"
        body = resources.files("llmlab.serving").joinpath("web", name).read_bytes()
        headers = {
            "Content-Security-Policy": CSP,
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer",
        }
        status = 401 if name == "login.html" else 200
        return Response(status, body, STATIC[name] + "; charset=utf-8", headers)

    async def _login(self, request: Request) -> Response:
        fields = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        key = self.config.api_key or ""
        if not hmac.compare_digest(fields.get("key", "").encode(), key.encode()):
            raise HTTPError(401, "wrong API key", code="invalid_api_key")
        cookie = f"{COOKIE}={self._session}; HttpOnly; SameSite=Strict; Path=/"
        return Response(303, b"", "text/plain", {"Location": "/", "Set-Cookie": cookie})

    # -- helpers for the routes -------------------------------------------------------------------------

    def check_model(self, name: str) -> None:
        if name != self.model_id:
            raise HTTPError(404, f"The model `{name}` does not exist; this server serves {self.model_id!r}",
                            code="model_not_found", param="model")  # fmt: skip

    async def encode(self, render: Callable[[Any], str]) -> list[int]:
        """Render a prompt with the tokenizer and encode it, off the event loop; 400 on a bad prompt."""

        def run() -> list[int]:
            return list(self.engine.encode(render(self.engine.tokenizer)))

        try:
            return await asyncio.to_thread(run)
        except (LlmlabError, ValueError, TypeError) as e:  # the chat template refusing messages, for one
            raise HTTPError(400, f"cannot build the prompt: {str(e)[:300]}", param="messages") from e

    def budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """New tokens for a prompt: the request's max_tokens (default: the server's limit), capped by the
        context window; 400 when the prompt leaves no room."""
        try:
            prefix = 0 if self.prefix_embeds is None else int(self.prefix_embeds.shape[0])
            return int(self.engine.budget(prompt_tokens, prefix, max_tokens or self.config.max_tokens))
        except LlmlabError as e:
            raise HTTPError(400, str(e), param="messages", code="context_length_exceeded") from e

    async def embedder_for(self, name: str) -> Any:
        if name != self.embedder_name:
            raise HTTPError(404, f"The model `{name}` does not exist; embeddings come from {self.embedder_name!r}",
                            code="model_not_found", param="model")  # fmt: skip
        if self._embedder is None:
            self._embedder = await self.scheduler.run(self._load_embedder)
        return self._embedder

    def _load_embedder(self) -> Any:
        if self.store is not None:
            return self.store.embedder
        from llmlab.rag.embedding import EmbedderConfig, load_embedder

        return load_embedder(EmbedderConfig(model=self.embedder_name))

    # -- routes -----------------------------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return Response.json({"status": "ok", "in_flight": self.scheduler.in_flight})

    async def _models(self, request: Request) -> Response:
        ids = [(self.model_id, "llmlab"), (self.embedder_name, "llmlab")]
        return Response.json(api.model_list(ids, self.created))

    async def _model(self, request: Request) -> Response:
        name = request.path[len("/v1/models/") :]
        if name not in (self.model_id, self.embedder_name):
            raise HTTPError(404, f"The model `{name}` does not exist", code="model_not_found", param="model")
        return Response.json({"id": name, "object": "model", "created": self.created, "owned_by": "llmlab"})

    async def _info(self, request: Request) -> Response:
        store = None
        if self.store is not None:
            stats = await self.scheduler.run(self.store.stats)
            store = {"location": self.store.location, "documents": stats.documents, "chunks": stats.chunks}
        return Response.json({
            "model": self.model_id, "embedder": self.embedder_name, "context_length": self.engine.context_length,
            "store": store, "max_tokens": self.config.max_tokens, "max_n": self.config.max_n,
            "rankings": str(self.rankings.path), "tool_calling": self.tool_calling.name, "threads": self.threads,
            "version": __version__,
        })  # fmt: skip

    async def _next_token(self, request: Request) -> Response:
        from llmlab.generation.config import SamplingParams
        from llmlab.serving.playground import filter_stages, next_token_logits
        from llmlab.serving.tools import render_prompt

        body = rq.check_fields(request.json(), {"model", "prompt", "chat", "temperature", "top_k", "top_p", "min_p",
                                                "greedy", "top"}, "next-token")  # fmt: skip
        prompt = rq.string(body, "prompt")
        chat = rq.boolean(body, "chat", True)
        try:
            params = SamplingParams(
                temperature=rq.number(body, "temperature", 1.0, 0.0, 2.0),
                top_k=rq.integer(body, "top_k", 0, 0, 1 << 20) or 0,
                top_p=rq.number(body, "top_p", 1.0, 0.0, 1.0, open_lo=True),
                min_p=rq.number(body, "min_p", 0.0, 0.0, 1.0),
                greedy=rq.boolean(body, "greedy"),
            )
        except ConfigError as e:
            raise HTTPError(400, str(e)) from e
        top = rq.integer(body, "top", 12, 1, 50) or 12
        messages = [{"role": "user", "content": prompt, "tool_calls": []}]
        ids = await self.encode(lambda tok: render_prompt(tok, messages, []) if chat else prompt)
        self.budget(len(ids), 1)  # 400 when the prompt fills the context window
        logits = await self.scheduler.run(lambda: next_token_logits(self.engine, ids, self.prefix_embeds))
        stages = filter_stages(logits, params, top)
        tokens = [
            self.engine.tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in stages["ids"]
        ]
        return Response.json({"tokens": tokens, **stages})

    async def _rankings(self, request: Request) -> Response:
        count = await asyncio.to_thread(self.rankings.count)
        return Response.json({"file": str(self.rankings.path), "count": count})

    async def _rank(self, request: Request) -> Response:
        body = request.json()
        try:
            count = await asyncio.to_thread(self.rankings.add, body)
        except LlmlabError as e:
            raise HTTPError(400, str(e), param="ranks") from e
        return Response.json({"file": str(self.rankings.path), "count": count})


def _cookie(request: Request, name: str) -> str:
    for part in request.headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return ""


class BackgroundServer:
    """A Server on its own event loop in a background thread (tests, notebooks): `start()`, `url`, `stop()`."""

    def __init__(self, server: Server):
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="llmlab-http", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=60)
        return self

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
