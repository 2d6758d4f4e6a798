"""Crawling a website: same-site pages, breadth first, within depth and page limits, politely.

    robots.txt (urllib.robotparser) -> start URL + sitemap URLs (sitemap.xml and robots' Sitemap: lines)
    -> breadth-first: fetch (stdlib urllib, redirects followed) -> HTML page -> Document(source=URL, "web")
                                                                 -> its <a href> links, depth + 1

Same site means the same scheme, host and port as the start URL (or where it redirected to). Links to other
hosts are never fetched. Pages disallowed by robots.txt, non-HTML files, HTTP errors, pages over the size limit
and redirects off the site are skipped and reported through `on_skip(url, reason)`. Only an unreachable or
failing start URL raises. Between two requests the crawler waits `delay` seconds (or robots.txt's
Crawl-delay, whichever is longer).
Tests: tests/rag/test_crawl.py (a real http.server site in a thread)
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import urllib.robotparser
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urldefrag, urljoin, urlsplit
from xml.etree import ElementTree

from llmlab.errors import ConfigError, DataError
from llmlab.rag.loaders.html import document_from_tree, page_links, parse_html
from llmlab.rag.loaders.source import DEFAULT_MAX_BYTES
from llmlab.rag.types import Document

USER_AGENT = "llmlab-crawler/0.1"
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@dataclass
class _Response:
    url: str
    """Final URL after redirects."""
    status: int
    content_type: str
    charset: str | None
    body: bytes


SkipHandler = Callable[[str, str], None]
"""Called with (url, reason) for every page the crawl does not turn into a Document."""


def crawl(
    url: str,
    *,
    max_depth: int = 2,
    max_pages: int = 100,
    delay: float = 0.5,
    timeout: float = 10.0,
    max_bytes: int = DEFAULT_MAX_BYTES,
    use_sitemaps: bool = True,
    user_agent: str = USER_AGENT,
    on_skip: SkipHandler | None = None,
) -> Iterator[Document]:
    """Crawl the site of `url` and yield one Document per HTML page (source = the page's final URL).

    Args:
        url: start page, http:// or https://.
        max_depth: follow links this many clicks away from the start page (0: the start page only);
            sitemap URLs count as one click away.
        max_pages: stop after this many Documents.
        delay: seconds to wait between requests (tests use 0).
        timeout: seconds to wait for a server to answer.
        max_bytes: skip pages larger than this.
        use_sitemaps: also visit the URLs listed in /sitemap.xml and in robots.txt's Sitemap: lines.
        user_agent: sent with each request and matched against robots.txt.
        on_skip: told about each skipped page and why.

    Raises:
        ConfigError: a URL that is not http(s), or negative limits.
        DataError: the start URL cannot be fetched (network unreachable, refused, HTTP error), naming it.
    """
    _check_args(url, max_depth, max_pages, delay)
    fetcher = _Fetcher(user_agent, timeout, max_bytes, delay)
    skip = on_skip or (lambda _url, _reason: None)
    robots = _robots(fetcher, url)
    if robots.crawl_delay(user_agent):
        fetcher.delay = max(delay, float(robots.crawl_delay(user_agent) or 0))
    if not robots.can_fetch(user_agent, url):
        raise DataError("robots.txt disallows this page for crawlers", location=url)
    first = fetcher.get_start(url)
    frontier = _Frontier({_site(url), _site(first.url)}, {_normal(url), _normal(first.url)})
    frontier.queue.append((first.url, 0, first))
    if use_sitemaps and max_depth >= 1:
        for link in _sitemap_urls(fetcher, url, robots.site_maps() or []):
            frontier.add(link, 1)
    yielded = 0
    while frontier.queue and yielded < max_pages:
        page_url, depth, response = frontier.queue.popleft()
        if not robots.can_fetch(user_agent, page_url):
            skip(page_url, "disallowed by robots.txt")
            continue
        result = _visit(fetcher, page_url, response, frontier.sites, max_bytes)
        if isinstance(result, str):
            skip(page_url, result)
            continue
        document, links = result
        yielded += 1
        yield document
        for link in links if depth < max_depth else []:
            frontier.add(link, depth + 1)


@dataclass
class _Frontier:
    """Pages still to visit, breadth first, and every URL already queued (without #fragments)."""

    sites: set[str]
    seen: set[str]
    queue: deque[tuple[str, int, _Response | None]] = field(default_factory=deque)

    def add(self, url: str, depth: int) -> None:
        url = _normal(url)
        if _site(url) in self.sites and url not in self.seen:
            self.seen.add(url)
            self.queue.append((url, depth, None))


def _check_args(url: str, max_depth: int, max_pages: int, delay: float) -> None:
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ConfigError(f"a website to crawl must be an http:// or https:// URL, got {url!r}")
    if max_depth < 0 or max_pages < 1 or delay < 0:
        raise ConfigError(
            f"--max-depth must be >= 0, --max-pages >= 1 and --delay >= 0, got {max_depth}, {max_pages}, {delay}"
        )


def _visit(
    fetcher: _Fetcher, url: str, response: _Response | None, sites: set[str], max_bytes: int
) -> tuple[Document, list[str]] | str:
    """(Document, links) for an HTML page, or the reason it was skipped."""
    if response is None:
        try:
            response = fetcher.get(url)
        except DataError as err:
            return str(err).removeprefix(f"{url}: ")
    if _site(response.url) not in sites:
        return f"redirected off the site to {response.url}"
    if response.content_type not in _HTML_TYPES:
        return f"not an HTML page ({response.content_type or 'no content type'})"
    try:
        tree, encoding = parse_html(
            response.body, response.url, url=response.url, declared_encoding=response.charset
        )
    except DataError as err:
        return str(err).removeprefix(f"{response.url}: ")
    links = [_normal(link) for link in page_links(tree) if urlsplit(link).scheme in ("http", "https")]
    document = document_from_tree(tree, response.body, response.url, encoding, "web")
    return document, links


class _Fetcher:
    """GET with a user agent, a timeout, a size limit and the polite delay between requests."""

    def __init__(self, user_agent: str, timeout: float, max_bytes: int, delay: float) -> None:
        self.user_agent, self.timeout, self.max_bytes, self.delay = user_agent, timeout, max_bytes, delay
        self._last = 0.0

    def get_start(self, url: str) -> _Response:
        response = self.get(url)
        if response.content_type not in _HTML_TYPES:
            raise DataError(f"the start page is not HTML ({response.content_type})", location=url)
        return response

    def get(self, url: str) -> _Response:
        """The response to GET `url`; DataError "<url>: <reason>" on any network or HTTP failure."""
        wait = self._last + self.delay - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        request = urllib.request.Request(url, headers={"User-Agent": self.user_agent})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read(self.max_bytes + 1)
                final, headers, status = resp.geturl(), resp.headers, resp.status
        except urllib.error.HTTPError as err:
            raise DataError(f"HTTP {err.code} {err.reason}", location=url) from err
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", None) or err
            raise DataError(
                f"cannot reach the server: {reason}; check the URL and the network", location=url
            ) from err
        finally:
            self._last = time.monotonic()
        if len(body) > self.max_bytes:
            raise DataError(f"over the {self.max_bytes / 2**20:.1f} MiB size limit", location=url)
        return _Response(final, status, headers.get_content_type(), headers.get_content_charset(), body)


def _robots(fetcher: _Fetcher, url: str) -> urllib.robotparser.RobotFileParser:
    """robots.txt of the site. An HTTP error allows all, but 401/403 disallow all (as robotparser does);
    an unreachable server is an error naming the start URL."""
    robots_url = urljoin(url, "/robots.txt")
    parser = urllib.robotparser.RobotFileParser(robots_url)
    try:
        lines = fetcher.get(robots_url).body.decode("utf-8", errors="replace").splitlines()
    except DataError as err:
        if not isinstance(err.__cause__, urllib.error.HTTPError):
            raise DataError(str(err).removeprefix(f"{robots_url}: "), location=url) from err.__cause__
        lines = ["User-agent: *", "Disallow: /"] if err.__cause__.code in (401, 403) else []
    parser.parse(lines)
    return parser


def _sitemap_urls(fetcher: _Fetcher, url: str, declared: list[str]) -> list[str]:
    """Page URLs from /sitemap.xml and the sitemaps robots.txt names (sitemap indexes followed, at most 20 files)."""
    pending = list(dict.fromkeys([*declared, urljoin(url, "/sitemap.xml")]))
    pages: list[str] = []
    done: set[str] = set()
    while pending and len(done) < 20:
        sitemap = pending.pop(0)
        done.add(sitemap)
        try:
            root = ElementTree.fromstring(fetcher.get(sitemap).body)
        except (DataError, ElementTree.ParseError):
            continue  # a missing or broken sitemap only means fewer starting points
        locs = [(loc.text or "").strip() for loc in root.iter(f"{_SITEMAP_NS}loc")]
        if root.tag == f"{_SITEMAP_NS}sitemapindex":
            pending += [loc for loc in locs if loc not in done]
        else:
            pages += [loc for loc in locs if loc]
    return pages


def _site(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _normal(url: str) -> str:
    """The URL without its #fragment (the same page)."""
    return urldefrag(url)[0]
