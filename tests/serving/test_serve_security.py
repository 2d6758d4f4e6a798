"""Security and robustness over raw sockets: loopback by default, the API key on every route but /health, size
and count limits, malformed and mistyped input, slow clients (slowloris) cut off without hurting others,
overload answered with 503, a disconnect cancelling its generation, and no request text ever evaluated."""

from __future__ import annotations

import json
import socket
import time
import urllib.parse

import pytest
from servekit import start_server

from llmlab.serving.config import ServeConfig

HELLO = [{"role": "user", "content": "Hello"}]


def connect(url: str) -> socket.socket:
    parts = urllib.parse.urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return int(lines[0].split()[1]), headers, body


def request(url, method="GET", path="/health", body=None, headers=None, raw=None):
    """One HTTP request on a fresh connection: (status, headers, parsed JSON or text)."""
    data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
    host = urllib.parse.urlsplit(url).netloc
    head = {
        "Host": host,
        "Content-Type": "application/json",
        "Content-Length": str(len(data)),
        **(headers or {}),
    }
    message = (
        raw
        or (
            f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
        ).encode()
        + data
    )
    with connect(url) as sock:
        sock.sendall(message)
        status, got, payload = read_response(sock)
    try:
        return status, got, json.loads(payload)
    except ValueError:
        return status, got, payload.decode("utf-8", "replace")


def chat(url, **overrides):
    return request(
        url,
        "POST",
        "/v1/chat/completions",
        {"model": "tiny", "messages": HELLO, "max_tokens": 2, **overrides},
    )


def test_binds_loopback_by_default():
    config = ServeConfig()
    assert config.host == "127.0.0.1" and config.loopback and not ServeConfig(host="0.0.0.0").loopback


@pytest.fixture(scope="module")
def strict(tiny_engine, tmp_path_factory):
    """A server with small limits, a short request timeout and an API key."""
    running = start_server(tiny_engine, tmp_path_factory.mktemp("strict"), api_key="s3cret-key", request_timeout=1.0,
                           max_body_bytes=4096, max_messages=4, max_tokens=64, max_batch=1, max_waiting=0)  # fmt: skip
    yield running
    running.stop()


KEY = {"Authorization": "Bearer s3cret-key"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/models"), ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/v1/embeddings"),
     ("GET", "/v1/llmlab/info"), ("POST", "/v1/llmlab/next-token"), ("POST", "/v1/llmlab/rankings"),
     ("GET", "/static/app.js"), ("GET", "/v1/models/tiny")],
)  # fmt: skip
def test_every_route_but_health_needs_the_key(strict, method, path):
    status, _headers, body = request(strict.url, method, path, {} if method == "POST" else None)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    wrong = request(
        strict.url, method, path, {} if method == "POST" else None, {"Authorization": "Bearer nope-nope"}
    )
    assert wrong[0] == 401 and wrong[2]["error"]["message"] == "wrong API key"
    assert request(strict.url)[0] == 200  # /health


def test_the_key_opens_the_api_and_the_page_login(strict):
    assert request(strict.url, path="/v1/models", headers=KEY)[0] == 200
    status, _, page = request(strict.url, path="/")
    assert (
        status == 401 and "API key" in page and "/static/app.js" not in page
    )  # the login form, nothing else
    status, _, _ = request(
        strict.url,
        "POST",
        "/login",
        b"key=wrong-key-x",
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 401
    status, headers, _ = request(
        strict.url, "POST", "/login", b"key=s3cret-key", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    cookie = headers["set-cookie"].split(";")[0]
    assert (
        status == 303 and "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
    )
    assert "s3cret-key" not in cookie
    status, headers, page = request(strict.url, path="/", headers={"Cookie": cookie})
    assert (
        status == 200
        and "/static/app.js" in page
        and "default-src 'self'" in headers["content-security-policy"]
    )


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, 413, "over the server's limit"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b'"just a string"', 400, "JSON object"),
        (json.dumps({"model": "tiny", "messages": "hello"}).encode(), 400, "'messages'"),
        (json.dumps({"model": "tiny", "messages": HELLO, "max_tokens": "5"}).encode(), 400, "'max_tokens' must be an integer"),
        (json.dumps({"model": "tiny", "messages": HELLO, "max_tokens": True}).encode(), 400, "'max_tokens' must be an integer"),
        (json.dumps({"model": "tiny", "messages": HELLO, "max_tokens": 65}).encode(), 400, "[1, 64]"),
        (json.dumps({"model": "tiny", "messages": HELLO * 5}).encode(), 400, "over the server's limit of 4"),
        (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "seed": 1' + b"0" * 3000 + b"}", 400, "must be in"),
    ],
)  # fmt: skip
def test_bad_bodies_get_clean_errors(strict, body, status, needle):
    got, _, error = request(strict.url, "POST", "/v1/chat/completions", body, KEY)
    assert got == status and needle in error["error"]["message"]
    assert set(error["error"]) == {"message", "type", "param", "code"}


def test_a_prompt_over_the_context_window_is_refused(server):
    long = "".join(
        chr(0x4E00 + i) for i in range(3000)
    )  # about 9,000 byte-level tokens, the context holds 4,096
    status, _, error = chat(server.url, messages=[{"role": "user", "content": long}])
    assert status == 400 and error["error"]["code"] == "context_length_exceeded"
    assert "context window of 4096" in error["error"]["message"]


def test_malformed_requests(strict):
    url = strict.url
    host = urllib.parse.urlsplit(url).netloc
    assert request(url, raw=b"GARBAGE\r\n\r\n")[0] == 400
    assert (
        request(
            url,
            raw=f"POST /v1/models HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n".encode(),
        )[0]
        == 411
    )
    many = "".join(f"X-{i}: y\r\n" for i in range(100))
    assert request(url, raw=f"GET /health HTTP/1.1\r\nHost: {host}\r\n{many}\r\n".encode())[0] == 431
    assert (
        request(url, raw=f"GET /health HTTP/1.1\r\nHost: {host}\r\nX: {'a' * 20000}\r\n\r\n".encode())[0]
        == 431
    )
    assert (
        request(url, "POST", "/v1/chat/completions", b"{}", {**KEY, "Content-Type": "text/plain"})[0] == 415
    )
    assert request(url, headers={"Host": "evil.example:80"})[0] == 400  # DNS rebinding
    assert request(url, path="/static/../app.py", headers=KEY)[0] == 404
    assert request(url, path="/static/login.html", headers=KEY)[0] == 404
    assert request(url, "DELETE", "/v1/models", headers=KEY)[0] == 405
    status, _, error = request(url, "POST", "/v1/embeddings", b"x" * 5000, KEY)
    assert status == 413 and error["error"]["code"] == "request_too_large"


def test_slow_clients_are_cut_off_without_hurting_others(strict):
    """Slowloris: a head trickled a byte at a time gets 408 after the 1 s deadline; meanwhile 30 idle
    connections sit open and a normal client is answered at once."""
    idle = [connect(strict.url) for _ in range(30)]
    slow = connect(strict.url)
    started = time.monotonic()
    answered = []
    for byte in b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n":
        try:
            slow.sendall(bytes([byte]))
        except OSError:  # the server has answered 408 and closed
            break
        if len(answered) < 3:
            answered.append(request(strict.url)[0])
        time.sleep(0.05)
    assert answered == [200, 200, 200]
    status, _, body = read_response(slow)
    assert status == 408 and b"took over 1 s" in body and time.monotonic() - started < 5
    slow_body = connect(strict.url)
    slow_body.sendall(b"POST /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert read_response(slow_body)[0] in (400, 408)  # Host is checked after the body deadline (3 s)
    for sock in [*idle, slow, slow_body]:
        sock.close()
    assert chat(strict.url, max_tokens=2, **{})[0] == 401  # still serving


def test_overload_gets_503_and_a_disconnect_cancels_its_generation(strict):
    """max_batch 1 and no waiting room: while one stream runs, another request gets 503. Closing the
    stream's socket cancels its row at the next decode step (far fewer than its 64 tokens are generated)."""
    scheduler = strict.server.scheduler
    body = json.dumps(
        {"model": "tiny", "messages": HELLO, "max_tokens": 64, "stream": True, "temperature": 0}
    ).encode()
    sock = connect(strict.url)
    host = urllib.parse.urlsplit(strict.url).netloc
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer s3cret-key\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)  # fmt: skip
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    tokens_before = scheduler.tokens
    status, headers, error = request(
        strict.url, "POST", "/v1/chat/completions", {"model": "tiny", "messages": HELLO}, KEY
    )
    assert status == 503 and error["error"]["code"] == "overloaded" and headers["retry-after"] == "1"
    sock.close()
    deadline = time.monotonic() + 10
    while scheduler.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert scheduler.in_flight == 0 and scheduler.tokens - tokens_before < 64
    assert chat(strict.url, max_tokens=2)[0] == 401 and request(strict.url, "POST", "/v1/chat/completions",
        {"model": "tiny", "messages": HELLO, "max_tokens": 2}, KEY)[0] == 200  # fmt: skip


def test_request_text_is_never_evaluated(server, tmp_path):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {
        "x": {"type": "string", "default": code}}}}}  # fmt: skip
    for body in ({"model": "tiny", "messages": [{"role": "user", "content": code}], "max_tokens": 4, "stop": [code[:50]]},
                 {"model": "tiny", "messages": [{"role": "system", "content": "{{ " + code + " }}"}], "max_tokens": 2},
                 {"model": "tiny", "messages": HELLO, "tools": [tool], "max_tokens": 2}):  # fmt: skip
        assert request(server.url, "POST", "/v1/chat/completions", body)[0] == 200
    assert request(server.url, "POST", "/v1/llmlab/next-token", {"prompt": code, "top_k": 3})[0] == 200
    assert not marker.exists()
