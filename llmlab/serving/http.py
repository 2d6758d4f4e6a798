"""A small HTTP/1.1 server on asyncio streams, with the limits a network endpoint needs.

    connection -> [idle timeout] request head (deadline, size caps) -> body (Content-Length only, size cap,
    deadline) -> handler -> response (Content-Length, keep-alive) or a stream (chunked, e.g. server-sent events)

Why the standard library and not starlette + uvicorn: the server's cost is the model (milliseconds per decode
step for the whole batch) and its HTTP needs are narrow (JSON in, JSON or SSE out, HTTP/1.1 keep-alive), so a
framework buys little, and these limits are what uvicorn does not give: a deadline on the whole request head
and body (a slowloris client trickling a byte every few seconds is cut off at `head_timeout`, uvicorn's
h11 protocol has only an idle keep-alive timer), a cap on connections that answers 503 at once, and a
disconnect signal while a handler waits on the engine (the peer's FIN is read by a watcher task, so a
client that goes away cancels its generation at the next decode step). bench/serve.py measures the HTTP
layer's cost per streamed token beside the engine's.

Every failure is an `HTTPError` rendered in OpenAI's error shape: {"error": {"message", "type", "param",
"code"}}. Nothing from a request is evaluated: the head is split on bytes, the body is handed over as bytes.
Tests: tests/serving/test_serve_security.py (slowloris, huge and malformed requests, other clients unharmed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass(frozen=True)
class Limits:
    """What one connection may send, and for how long the server waits for it."""

    max_body_bytes: int = 1 << 20
    max_head_bytes: int = 16 << 10
    max_headers: int = 64
    head_timeout: float = 10.0
    """Seconds from a request's first byte until its head is complete (slowloris)."""
    body_timeout: float = 30.0
    """Seconds for the whole body once the head is in."""
    idle_timeout: float = 30.0
    """Seconds a kept-alive connection may sit idle between requests."""
    write_timeout: float = 30.0
    """Seconds a client may take to accept a response chunk before it is dropped."""
    max_connections: int = 256


class HTTPError(Exception):
    """An error response in OpenAI's shape. `type` is OpenAI's error type."""

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> Response:
        return Response.json(self.body(), self.status, self.headers)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-cased names; a repeated header keeps its last value."""
    body: bytes
    client: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; a 400 in OpenAI's shape when it is not."""
        if not self.body:
            raise HTTPError(400, "the request body is empty; send a JSON object")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise HTTPError(
                400, f"the request body is not valid JSON ({_short(e)}); send a JSON object"
            ) from e


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, "application/json", dict(headers or {}))


@dataclass
class StreamResponse:
    """A response sent piece by piece (chunked): `chunks` is consumed while the client stays connected; if it
    goes away, the iterator is closed (its `finally` runs), which is how a stream cancels its generation."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    on_close: Callable[[], None] | None = None
    """Called when the response ends, however it ends (also if `chunks` never started)."""


Handler = Callable[[Request], Awaitable[Response | StreamResponse]]


class Disconnected(Exception):
    """The client closed the connection (or stopped reading) before the response was complete."""


class Connection:
    """One client socket: buffered reads with deadlines, and a watcher that notices a closed peer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: Limits):
        self.reader, self.writer, self.limits = reader, writer, limits
        self.buffer = bytearray()
        self.eof = False
        peer = writer.get_extra_info("peername")
        self.client = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else ""

    async def _fill(self, timeout: float) -> None:
        if timeout <= 0:
            raise TimeoutError
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if data:
            self.buffer += data
        else:
            self.eof = True

    async def read_request(self) -> Request | None:
        """The next request, or None when the client closed or idled out between requests."""
        limits = self.limits
        if not self.buffer:
            try:
                await self._fill(limits.idle_timeout)
            except (TimeoutError, ConnectionError):
                return None
            if self.eof:
                return None
        deadline = time.monotonic() + limits.head_timeout
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > limits.max_head_bytes:
                raise HTTPError(431, f"the request head is over {limits.max_head_bytes} bytes")
            if self.eof:
                return None
            try:
                await self._fill(deadline - time.monotonic())
            except TimeoutError:
                raise HTTPError(408, f"the request head took over {limits.head_timeout:g} s") from None
        if end > limits.max_head_bytes:
            raise HTTPError(431, f"the request head is over {limits.max_head_bytes} bytes")
        head = bytes(self.buffer[:end])
        del self.buffer[: end + 4]
        method, target, headers = _parse_head(head, limits.max_headers)
        body = await self._read_body(headers)
        url = urlsplit(target)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        return Request(method, unquote(url.path), query, headers, body, self.client)

    async def _read_body(self, headers: dict[str, str]) -> bytes:
        if "transfer-encoding" in headers:
            raise HTTPError(411, "chunked request bodies are not accepted; send Content-Length")
        raw = headers.get("content-length", "0").strip()
        if not raw.isdigit() or len(raw) > 18:
            raise HTTPError(400, f"Content-Length must be a whole number of bytes, got {raw[:40]!r}")
        length = int(raw)
        if length > self.limits.max_body_bytes:
            raise HTTPError(
                413,
                f"the request body is {length} bytes, over the server's limit of {self.limits.max_body_bytes}",
                code="request_too_large",
            )
        deadline = time.monotonic() + self.limits.body_timeout
        while len(self.buffer) < length:
            if self.eof:
                raise Disconnected
            try:
                await self._fill(deadline - time.monotonic())
            except TimeoutError:
                raise HTTPError(408, f"the request body took over {self.limits.body_timeout:g} s") from None
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    async def closed(self) -> None:
        """Return once the peer has closed its side (data it sends meanwhile is kept for the next request)."""
        while not self.eof:
            try:
                await self._fill(3600.0)
            except TimeoutError:
                continue
            except ConnectionError:
                self.eof = True

    async def write(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise Disconnected
        self.writer.write(data)
        try:
            await asyncio.wait_for(self.writer.drain(), self.limits.write_timeout)
        except (TimeoutError, ConnectionError) as e:
            raise Disconnected from e


def _parse_head(head: bytes, max_headers: int) -> tuple[str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as e:  # pragma: no cover - latin-1 decodes any byte
        raise HTTPError(400, "the request head is not text") from e
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HTTPError(400, f"malformed request line {lines[0][:80]!r}")
    if len(lines) - 1 > max_headers:
        raise HTTPError(431, f"{len(lines) - 1} header lines, over the limit of {max_headers}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HTTPError(400, f"malformed header line {line[:80]!r}")
        headers[name.lower()] = value.strip()
    return parts[0].upper(), parts[1], headers


async def _stop(task: asyncio.Future[Any]) -> None:
    """Cancel a task and wait until it has stopped (a cancelled read must end before the next one starts)."""
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


def _short(e: BaseException) -> str:
    return str(e)[:200] or type(e).__name__


def _head(status: int, headers: dict[str, str]) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class HTTPServer:
    """Serves `handler` on host:port. `await start()`, then `port` is the bound port (0 picks one)."""

    def __init__(
        self, handler: Handler, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None
    ):
        self.handler, self.host, self.port = handler, host, port
        self.limits = limits or Limits()
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connection, self.host, self.port, limit=1 << 16)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        conn = Connection(reader, writer, self.limits)
        try:
            if self.connections > self.limits.max_connections:
                error = HTTPError(
                    503, "too many connections; try again shortly", "server_error", code="overloaded"
                )
                await self._send(conn, error.response(), keep_alive=False)
                return
            await self._serve(conn)
        except (Disconnected, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.connections -= 1
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(self, conn: Connection) -> None:
        while True:
            try:
                request = await conn.read_request()
            except HTTPError as e:
                await self._send(conn, e.response(), keep_alive=False)
                return
            if request is None:
                return
            keep_alive = request.headers.get("connection", "").lower() != "close"
            response = await self._run_handler(conn, request)
            if response is None:
                return  # the client went away while the handler worked
            if isinstance(response, StreamResponse):
                await self._stream(conn, response)
            else:
                await self._send(conn, response, keep_alive)
            if not keep_alive:
                return

    async def _run_handler(self, conn: Connection, request: Request) -> Response | StreamResponse | None:
        """Run the handler; cancel it if the client disconnects first (None then)."""
        work = asyncio.ensure_future(self._safe_handler(request))
        watch = asyncio.ensure_future(conn.closed())
        try:
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _stop(watch)
        if work not in done:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            return None
        return work.result()

    async def _safe_handler(self, request: Request) -> Response | StreamResponse:
        try:
            return await self.handler(request)
        except HTTPError as e:
            return e.response()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug must not take the connection, or the server, down
            return HTTPError(500, f"internal error: {_short(e)}", "server_error").response()

    async def _send(self, conn: Connection, response: Response, keep_alive: bool) -> None:
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Connection": "keep-alive" if keep_alive else "close",
            **SECURITY_HEADERS,
            **response.headers,
        }
        await conn.write(_head(response.status, headers) + response.body)

    async def _stream(self, conn: Connection, response: StreamResponse) -> None:
        headers = {
            "Content-Type": response.content_type,
            "Transfer-Encoding": "chunked",
            "Connection": "keep-alive",
            **SECURITY_HEADERS,
            **response.headers,
        }
        chunks = response.chunks
        watch = asyncio.ensure_future(conn.closed())
        try:
            await conn.write(_head(response.status, headers))
            while True:
                step = asyncio.ensure_future(anext(chunks))
                done, _ = await asyncio.wait({step, watch}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(BaseException):
                        await step
                    raise Disconnected
                try:
                    data = step.result()
                except StopAsyncIteration:
                    break
                if data:
                    await conn.write(b"%x\r\n%s\r\n" % (len(data), data))
            await conn.write(b"0\r\n\r\n")
        finally:
            await _stop(watch)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            if response.on_close is not None:
                response.on_close()
