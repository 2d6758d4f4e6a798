"""`http_get`: fetch a web page from an allow-list of hosts, with a size cap and a timeout.

Only http and https URLs whose host (and port, when the allow-list entry names one) is on the list are
fetched; every redirect is checked against the same list before it is followed (at most 5), so a permitted
host cannot bounce the request elsewhere. Proxies from the environment are ignored. The body is read up to
the cap (256 KiB by default) and decoded as text; HTML is reduced to its visible text.
Tests: tests/agents/test_builtin_http.py (a real HTTP server on 127.0.0.1: allowed, disallowed host,
redirect to a disallowed host, size cap, timeout).
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from html.parser import HTMLParser
from typing import Any

from llmlab.agents.tools import Tool, ToolExample, tool
from llmlab.errors import ConfigError

MAX_BYTES = 256 * 1024
MAX_REDIRECTS = 5


class HostRefused(PermissionError):
    """The URL's host is not on the allow-list (or the URL is not http/https)."""


def check_url(url: str, allowed: Sequence[str]) -> str:
    """The URL if its scheme is http(s) and its host[:port] is allowed; raises HostRefused otherwise."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise HostRefused(f"{url!r}: only http and https URLs can be fetched")
    host = (parts.hostname or "").lower().rstrip(".")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for entry in allowed:
        name, _, entry_port = entry.lower().rstrip(".").partition(":")
        if host == name and (not entry_port or int(entry_port) == port):
            return url.strip()
    shown = host or repr(url)
    raise HostRefused(f"{shown} is not an allowed host; allowed: {', '.join(allowed) or 'none'}")


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS

    def __init__(self, allowed: Sequence[str]):
        self.allowed = allowed

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        target = urllib.parse.urljoin(req.full_url, newurl)
        try:
            check_url(target, self.allowed)
        except HostRefused as e:
            raise HostRefused(f"refused to follow the redirect to {target}: {e}") from None
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _Text(HTMLParser):
    SKIP = ("script", "style", "noscript", "template")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.skipping += tag in self.SKIP

    def handle_endtag(self, tag: str) -> None:
        self.skipping -= tag in self.SKIP and self.skipping > 0

    def handle_data(self, data: str) -> None:
        if not self.skipping and data.strip():
            self.parts.append(data.strip())


def fetch(url: str, allowed: Sequence[str], timeout: float = 10.0, max_bytes: int = MAX_BYTES) -> str:
    """The text of `url` (HTML reduced to its visible text), at most `max_bytes` of body read."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _CheckedRedirects(allowed))
    request = urllib.request.Request(check_url(url, allowed), headers={"User-Agent": "llmlab-agent"})
    deadline = time.monotonic() + timeout
    try:
        with opener.open(request, timeout=timeout) as response:
            kind = response.headers.get_content_type()
            charset = response.headers.get_content_charset() or "utf-8"
            data = _read_capped(response, max_bytes + 1, deadline)
    except urllib.error.HTTPError as e:
        raise ConnectionError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise ConnectionError(f"{url}: {e.reason}") from None
    text = data[:max_bytes].decode(charset, errors="replace")
    if kind == "text/html" or re.match(r"\s*<(!doctype|html)", text[:200], re.I):
        parser = _Text()
        parser.feed(text)
        text = "\n".join(parser.parts)
    return text + (f"\n[... truncated at {max_bytes} bytes]" if len(data) > max_bytes else "")


def _read_capped(response: Any, limit: int, deadline: float) -> bytes:
    """Up to `limit` bytes, giving up at `deadline` (a server that trickles bytes cannot hold us)."""
    chunks, total = [], 0
    while total < limit:
        if time.monotonic() > deadline:
            raise TimeoutError("the server is too slow; gave up at the timeout")
        chunk = response.read(min(16384, limit - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def http_tool(allowed_hosts: Sequence[str], timeout: float = 10.0, max_bytes: int = MAX_BYTES) -> Tool:
    """`http_get` limited to `allowed_hosts` (names, or name:port)."""
    hosts = [h.strip() for h in allowed_hosts if h.strip()]
    if not hosts:
        raise ConfigError("http_get needs at least one allowed host; pass --allow-host NAME")

    @tool(
        name="http_get",
        reads=True,
        timeout=timeout + 1,
        examples=[
            ToolExample(
                "Fetch the page https://example.org/opening-hours",
                {"url": "https://example.org/opening-hours"},
                "Opening hours: Monday to Friday, 9:00 to 17:00.",
                "It is open Monday to Friday, 9:00 to 17:00.",
            )
        ],
    )
    def http_get(url: str) -> str:
        """Fetch a web page and return its text.

        Args:
            url: the full address, e.g. "https://example.com/page".
        """
        return fetch(url, hosts, timeout, max_bytes)

    hosts_text = ", ".join(hosts)
    http_get.description += f" Allowed hosts: {hosts_text}."
    return http_get
