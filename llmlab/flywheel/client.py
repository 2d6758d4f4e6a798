"""The flywheel's last step: serve the aligned adapter (`llmlab serve --adapter`) and ask it one held-out
question through the OpenAI client (the `openai` package when installed, else plain HTTP with the same JSON).

The server is a child process on a free loopback port; it is stopped (SIGTERM, then killed) however this ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask_served(
    model: str, adapter: str, question: str, max_tokens: int = 48, startup_s: float = 300.0
) -> dict[str, Any]:
    """Start `llmlab serve --model MODEL --adapter ADAPTER`, send `question` as a chat message (greedy), and
    return {"url", "model", "client", "question", "reply"}.

    Raises:
        LlmlabError: the server exited or did not listen within `startup_s` seconds (its output is included).
    """
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "llmlab",
        "serve",
        "--model",
        model,
        "--adapter",
        adapter,
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy()
    )
    try:
        url = _wait_for_url(proc, startup_s)
        model_id, reply, client = _chat(url, question, max_tokens)
        return {"url": url, "model": model_id, "client": client, "question": question, "reply": reply}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for_url(proc: subprocess.Popen[str], startup_s: float) -> str:
    """The server's URL from its ready line `llmlab serve: http://... (model ...)`."""
    assert proc.stdout is not None
    deadline, seen = time.monotonic() + startup_s, []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("llmlab serve: http"):
            return line.split()[2].rstrip("/")
    raise LlmlabError("llmlab serve did not start: " + "".join(seen[-5:]).strip())


def _chat(url: str, question: str, max_tokens: int) -> tuple[str, str, str]:
    messages: list[Any] = [{"role": "user", "content": question}]
    try:
        import openai
    except ImportError:
        models = json.load(urllib.request.urlopen(f"{url}/v1/models", timeout=60))
        model: str = models["data"][0]["id"]
        request = {"model": model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}
        body = json.dumps(request).encode()
        req = urllib.request.Request(f"{url}/v1/chat/completions", body, {"Content-Type": "application/json"})
        answer = json.load(urllib.request.urlopen(req, timeout=600))
        return model, answer["choices"][0]["message"]["content"], "http"
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="none")
    model_id = client.models.list().data[0].id
    done = client.chat.completions.create(
        model=model_id,
        messages=messages,
        temperature=0,
        max_tokens=max_tokens,
    )
    return model_id, done.choices[0].message.content or "", "openai"


def write_reply(result: dict[str, Any], out: str | Path) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
