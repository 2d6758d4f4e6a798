"""The web page in a real browser (Playwright driving Debian's Chromium, offline): a chat answer streams in
with its sources, moving the temperature slider changes the next-token chart, and ranking completions
writes the ranking file. Screenshots are saved in the test's tmp_path (their paths are printed)."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import sync_playwright

from llmlab.rlhf.records import read_rankings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does; never `playwright install`)"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    outside = []
    opened.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.url) else None)
    opened.goto(server.url + "/")
    wait_until(opened, lambda: "tiny" in opened.inner_text("#info"))
    yield opened
    assert outside == []  # nothing but this server: no CDN, works offline
    context.close()


def wait_until(page, condition, timeout=60.0):
    """Poll `condition()` from Python (the page's CSP forbids the string evaluation wait_for_function uses)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def version(page) -> int:
    return int(page.get_attribute("#pg-chart", "data-version"))


def shot(page, tmp_path, name):
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def test_chat_streams_an_answer_with_sources(page, tmp_path):
    streamed = []
    page.on(
        "response",
        lambda r: streamed.append(r.headers.get("content-type")) if "chat/completions" in r.url else None,
    )
    page.fill("#chat-input", "How long should I knead the dough?")
    page.click("#chat-send")
    page.wait_for_selector(".msg.assistant[data-done=true]", timeout=60_000)
    answer = page.inner_text(".msg.assistant .answer")
    sources = page.inner_text(".msg.assistant .sources")
    shot(page, tmp_path, "chat")
    assert streamed == ["text/event-stream"] and answer.strip()
    # A random model's answer is attributed to whichever passage its embedding lands nearest: either document.
    assert page.locator(".msg.assistant .sources li").count() >= 1
    assert ("bread.md" in sources and "Knead the dough" in sources) or (
        "rocket.md" in sources and "nozzle" in sources
    )


def test_temperature_changes_the_chart(page, tmp_path):
    page.click("#tab-playground")
    wait_until(page, lambda: version(page) >= 1)
    before = json.loads(page.get_attribute("#pg-chart", "data-probs"))
    seen = version(page)
    page.locator("#pg-temperature").fill("0.3")
    wait_until(page, lambda: version(page) > seen)
    after = json.loads(page.get_attribute("#pg-chart", "data-probs"))
    shot(page, tmp_path, "playground")
    assert page.locator("#pg-chart svg rect.bar").count() == len(after) * len(after[0])
    assert after[0] == before[0]  # the model's own distribution does not move
    assert max(after[1]) > max(before[1])  # a lower temperature sharpens it
    page.click("#pg-generate")
    wait_until(page, lambda: len(page.inner_text("#pg-output")) > 0)


def test_ranking_completions_writes_the_ranking_file(page, server, tmp_path):
    page.click("#tab-feedback")
    page.fill("#fb-prompt", "My house is too hot")
    page.fill("#fb-n", "3")
    page.click("#fb-generate")
    page.wait_for_selector("#fb-completions li:nth-child(3)", timeout=60_000)
    selects = page.locator("#fb-completions select")
    for i, rank in enumerate(["2", "1", "3"]):
        selects.nth(i).select_option(rank)
    page.click("#fb-save")
    wait_until(page, lambda: page.inner_text("#fb-status").startswith("saved"))
    shot(page, tmp_path, "feedback")
    ranking = read_rankings(server.server.rankings.path)[-1]
    assert (
        ranking.prompt == "My house is too hot"
        and ranking.ranks == [2, 1, 3]
        and len(ranking.completions) == 3
    )
    assert ranking.ranker == "human" and ranking.criterion == "helpfulness"
