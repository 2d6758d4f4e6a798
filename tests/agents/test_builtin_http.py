"""http_get against a real HTTP server on 127.0.0.1: allowed hosts only, redirects checked, size and time
capped."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from llmlab.agents.builtin.http import HostRefused, check_url, fetch, http_tool
from llmlab.errors import ConfigError


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/hello": (200, "text/plain", b"hello there"),
            "/page": (200, "text/html", b"<html><script>x()</script><p>Opening hours: 9 to 5</p></html>"),
            "/big": (200, "text/plain", b"y" * 5000),
        }
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/") :])
            self.end_headers()
            return
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"z")
                self.wfile.flush()
                time.sleep(0.1)
            return
        status, kind, body = routes.get(self.path, (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_allowed_host(server: str) -> None:
    assert fetch(f"http://{server}/hello", [server]) == "hello there"
    assert (
        fetch(f"http://{server}/page", ["127.0.0.1"]) == "Opening hours: 9 to 5"
    )  # any port of an allowed name
    assert (
        fetch(f"http://{server}/big", [server], max_bytes=100) == "y" * 100 + "\n[... truncated at 100 bytes]"
    )
    with pytest.raises(ConnectionError, match="HTTP 404"):
        fetch(f"http://{server}/missing", [server])


def test_disallowed_hosts_are_refused_before_any_request(server: str) -> None:
    port = server.split(":")[1]
    with pytest.raises(HostRefused, match=r"localhost is not an allowed host; allowed: 127\.0\.0\.1:1"):
        fetch(f"http://localhost:{port}/hello", ["127.0.0.1:1"])
    with pytest.raises(HostRefused, match=r"127\.0\.0\.1 is not an allowed host"):
        fetch(f"http://{server}/hello", ["127.0.0.1:1"])  # right name, wrong port
    with pytest.raises(HostRefused, match="only http and https"):
        check_url("file:///etc/passwd", ["127.0.0.1"])
    with pytest.raises(HostRefused, match="only http and https"):
        check_url("ftp://127.0.0.1/x", ["127.0.0.1"])
    with pytest.raises(HostRefused, match=r"evil\.example is not an allowed host"):
        check_url("http://127.0.0.1@evil.example/", ["127.0.0.1"])


def test_redirects_to_disallowed_hosts_are_refused(server: str) -> None:
    port = server.split(":")[1]
    assert fetch(f"http://{server}/to//hello", [server]) == "hello there"  # same host: followed
    with pytest.raises(HostRefused, match=f"refused to follow the redirect to http://localhost:{port}/hello"):
        fetch(f"http://{server}/to/http://localhost:{port}/hello", [server])


def test_slow_servers_hit_the_timeout(server: str) -> None:
    with pytest.raises(TimeoutError, match="too slow"):
        fetch(f"http://{server}/slow", [server], timeout=0.5)


def test_tool_lists_its_hosts(server: str) -> None:
    t = http_tool([server])
    assert (
        t.description.endswith(f"Allowed hosts: {server}.") and t(f"http://{server}/hello") == "hello there"
    )
    with pytest.raises(ConfigError, match="--allow-host"):
        http_tool([])
