"""Helpers for the serving tests: a server on loopback over a given engine, and JSON over plain HTTP.
Import with `from servekit import ...` (a unique name: every test folder has its own conftest)."""

from __future__ import annotations

from pathlib import Path


def start_server(engine, tmp_path: Path, store=None, prefix_embeds=None, **config):
    from llmlab.serving.app import BackgroundServer, Server
    from llmlab.serving.config import ServeConfig

    settings = ServeConfig(port=0, rankings=str(tmp_path / "ranked.jsonl"), threads="1", **config)
    embedder_name = "tiny-bert" if store is None else None
    names = {"embedder_name": embedder_name} if embedder_name else {}
    server = Server(engine, settings, "tiny", store=store, prefix_embeds=prefix_embeds, **names)
    return BackgroundServer(server).start()


def http_json(url: str, body=None, method: str | None = None) -> tuple[int, dict]:
    """(status, JSON body) of one request with the standard library (a POST when `body` is given)."""
    import json
    import urllib.error
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
