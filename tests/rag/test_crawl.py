"""Crawling a real local site (http.server in a thread): robots.txt, sitemap, depth, other hosts, redirects,
non-HTML files, 404s, page limits, and a closed port."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from llmlab.errors import ConfigError, DataError
from llmlab.rag.loaders import crawl


def page(title: str, body: str) -> bytes:
    return f"<html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>".encode()


class Site:
    """A served site: path -> (status, content type, body, extra headers); every request is logged."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes, dict[str, str]]]) -> None:
        self.routes = routes
        self.log: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.log.append(self.path)
                status, ctype, body, headers = site.routes.get(
                    self.path, (404, "text/html", b"not found", {})
                )
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sites() -> Iterator[tuple[Site, Site]]:
    other = Site({"/x.html": (200, "text/html", page("Elsewhere", "<p>Another host.</p>"), {})})
    site = Site({})
    html = "text/html; charset=utf-8"
    site.routes.update(
        {
            "/robots.txt": (
                200,
                "text/plain",
                f"User-agent: *\nDisallow: /private/\nSitemap: {site.url}/maps.xml\n".encode(),
                {},
            ),
            "/maps.xml": (
                200,
                "application/xml",
                f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                f"<url><loc>{site.url}/orphan.html</loc></url><url><loc>{site.url}/</loc></url></urlset>".encode(),
                {},
            ),
            "/": (
                200,
                html,
                page(
                    "Home",
                    f'<p>Welcome. <a href="a.html">A</a> <a href="/private/secret.html">secret</a> '
                    f'<a href="{other.url}/x.html">other host</a> <a href="#top">top</a> <a href="mailto:x@y.z">mail</a></p>',
                ),
                {},
            ),
            "/a.html": (
                200,
                html,
                page(
                    "Page A",
                    '<p><a href="b.html">B</a> <a href="file.pdf">pdf</a> <a href="/old">old</a> <a href="missing.html">gone</a></p>',
                ),
                {},
            ),
            "/b.html": (200, html, page("Page B", '<p>Deeper. <a href="deep.html">deeper still</a></p>'), {}),
            "/deep.html": (200, html, page("Deep", "<p>Too deep.</p>"), {}),
            "/old": (301, "text/html", b"", {"Location": "/c.html"}),
            "/c.html": (200, html, page("Page C", "<p>Moved here.</p>"), {}),
            "/file.pdf": (200, "application/pdf", b"%PDF-1.4 not really", {}),
            "/orphan.html": (
                200,
                "text/html",
                page("Orphan", "<p>Only in the sitemap, café.</p>").replace("é".encode(), b"\xe9"),
                {},
            ),
            "/private/secret.html": (200, html, page("Secret", "<p>Keep out.</p>"), {}),
        }
    )
    yield site, other
    site.close()
    other.close()


def test_crawl_follows_the_rules(sites):
    site, other = sites
    skipped: list[tuple[str, str]] = []
    docs = list(crawl(site.url + "/", max_depth=2, delay=0, on_skip=lambda u, r: skipped.append((u, r))))
    u = site.url
    assert [(d.source, d.title, d.source_type) for d in docs] == [
        (f"{u}/", "Home", "web"),
        (f"{u}/orphan.html", "Orphan", "web"),
        (f"{u}/a.html", "Page A", "web"),
        (f"{u}/b.html", "Page B", "web"),
        (f"{u}/c.html", "Page C", "web"),
    ]
    assert "Only in the sitemap, café." in docs[1].units[0].text  # latin-1 bytes, no charset anywhere
    assert skipped == [
        (f"{u}/private/secret.html", "disallowed by robots.txt"),
        (f"{u}/file.pdf", "not an HTML page (application/pdf)"),
        (f"{u}/missing.html", "HTTP 404 Not Found"),
    ]
    assert "/private/secret.html" not in site.log and "/deep.html" not in site.log
    assert other.log == []


def test_depth_and_page_limits(sites):
    site, _ = sites
    assert [d.title for d in crawl(site.url + "/", max_depth=0, delay=0)] == ["Home"]
    assert [d.title for d in crawl(site.url + "/", max_pages=2, delay=0)] == ["Home", "Orphan"]
    assert [d.title for d in crawl(site.url + "/", max_depth=1, use_sitemaps=False, delay=0)] == [
        "Home",
        "Page A",
    ]


def test_robots_forbidding_the_start_page(sites):
    site, _ = sites
    with pytest.raises(DataError, match=r"/private/secret\.html: robots\.txt disallows this page"):
        list(crawl(site.url + "/private/secret.html", delay=0))


def test_closed_port_is_a_clear_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/docs/"
    with pytest.raises(DataError) as err:
        list(crawl(url, delay=0, timeout=2))
    assert str(err.value).startswith(f"{url}: cannot reach the server: [Errno 111] Connection refused")


def test_start_page_errors(sites):
    site, _ = sites
    with pytest.raises(DataError, match=r"/nothing\.html: HTTP 404 Not Found"):
        list(crawl(site.url + "/nothing.html", delay=0))
    with pytest.raises(DataError, match=r"file\.pdf: the start page is not HTML \(application/pdf\)"):
        list(crawl(site.url + "/file.pdf", delay=0))
    with pytest.raises(ConfigError, match="must be an http:// or https:// URL, got 'ftp://x'"):
        list(crawl("ftp://x"))


def test_robots_403_forbids_all_and_sitemap_index_is_followed():
    site = Site({})
    index = '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><sitemap><loc>{}/s1.xml</loc></sitemap></sitemapindex>'
    urlset = '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>{}/only.html</loc></url></urlset>'
    site.routes.update(
        {
            "/robots.txt": (200, "text/plain", b"User-agent: *\nAllow: /\n", {}),
            "/sitemap.xml": (200, "application/xml", index.format(site.url).encode(), {}),
            "/s1.xml": (200, "application/xml", urlset.format(site.url).encode(), {}),
            "/": (200, "text/html", page("Home", "<p>No links here.</p>"), {}),
            "/only.html": (200, "text/html", page("Listed", "<p>Found through the sitemap index.</p>"), {}),
        }
    )
    try:
        assert [d.title for d in crawl(site.url + "/", delay=0)] == ["Home", "Listed"]
        site.routes["/robots.txt"] = (403, "text/plain", b"no", {})
        with pytest.raises(DataError, match=r"robots\.txt disallows this page"):
            list(crawl(site.url + "/", delay=0))
    finally:
        site.close()
