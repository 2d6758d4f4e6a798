"""Load test of `llmlab serve`: concurrent streaming clients on loopback, batched vs one at a time.

Each phase starts `llmlab serve` as its own process and runs N clients (default 32) for S seconds (default
60). Every client loops over one seeded chat request of its own (its own prompt and seed, sampled at
temperature 0.8, streamed), so each response has a known text: the one the first phase (max batch 1, each
request decoded alone) produced for that client. Every later response must equal it character for
character, so a lost, cut or mixed-up stream is counted, not missed. Reported per phase: requests, errors,
streams that differ from their solo text, completion tokens per second, time to first token (p50, p95),
and the server's resident memory (start, peak, end). The ratio line is batched / one-at-a-time throughput.

Phases: `solo` (--max-batch 1), `batched` (--max-batch = clients) with the server's thread policy (`all`:
the server owns the cores) and with the CLI's (`spare-one`: one thread fewer than the cores), all in fp32,
whose rows decode the same tokens in any batch; then `batched int8`, the default precision on CPUs with VNNI,
whose per-token activation quantization takes another path for a row decoded alone than for rows decoded
together (llmlab/models/int8.py), so a seeded text can change with the batch it shares: that phase checks
every stream is complete (ends with a finish reason, usage and [DONE]) but not its text. A last line
measures the HTTP layer alone (/health round trips per second on one keep-alive connection) beside the
engine's decode step, which is what justifies a standard-library HTTP server.

Usage: python bench/serve.py [--model M] [--clients 32] [--seconds 60] [--max-tokens 32] [--repeats N]
Timings on a shared machine are disturbed by other processes: compare the ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

TOPICS = [
    "the sea", "a dragon", "bread", "rain", "a library", "mountains", "a robot", "coffee", "winter", "a garden",
    "trains", "the moon", "music", "a cat", "the desert", "bicycles", "a city at night", "honey", "volcanoes",
    "a lighthouse", "chess", "autumn", "bees", "a river", "clocks", "snow", "the forest", "kites", "an island",
    "thunder", "a market", "stars",
]  # fmt: skip


@dataclass
class Phase:
    name: str
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    tokens: int = 0
    ttft: list[float] = field(default_factory=list)
    seconds: float = 0.0
    rss: list[float] = field(default_factory=list)
    check: bool = True
    """Compare each stream with the client's solo text (not for int8: see the module docstring)."""


def start_server(
    model: str, max_batch: int, threads: str, clients: int, precision: str
) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "llmlab", "serve", "--model", model, "--port", "0", "--max-batch", str(max_batch),
               "--max-waiting", str(2 * clients), "--threads", threads, "--precision", precision]  # fmt: skip
    errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the server; a pipe could fill and stall it
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("llmlab serve: "):
        proc.kill()
        errors.seek(0)
        raise SystemExit(f"llmlab serve did not start: {line}{errors.read()[-2000:]}")
    return proc, line.split()[2]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def stream_chat(url: str, body: dict) -> tuple[str, int, float]:
    """(text, completion tokens, seconds to the first content) of one streamed chat request."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    data = json.dumps(body).encode()
    started = time.perf_counter()
    writer.write(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)  # fmt: skip
    try:
        status = (await reader.readline()).split()[1]
        if status != b"200":
            raise RuntimeError(f"status {status.decode()}: {(await reader.read())[-300:]!r}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        text, tokens, first, buffer, done, finish = "", 0, 0.0, b"", False, None
        while not done:
            size = int((await reader.readline()).strip(), 16)
            if size == 0:
                break
            buffer += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                payload = event.removeprefix(b"data: ")
                if payload == b"[DONE]":
                    done = True
                    break
                chunk = json.loads(payload)
                if "error" in chunk:
                    raise RuntimeError(chunk["error"]["message"])
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
                for choice in chunk["choices"]:
                    finish = choice.get("finish_reason") or finish
                    piece = choice["delta"].get("content") or ""
                    if piece and not first:
                        first = time.perf_counter() - started
                    text += piece
        if not done or finish is None or not tokens:
            raise RuntimeError(
                f"incomplete stream: [DONE] {done}, finish_reason {finish}, usage tokens {tokens}"
            )
        return text, tokens, first
    finally:
        writer.close()


def max_tokens(index: int, args: argparse.Namespace) -> int:
    """Client i's budget: spread over [max_tokens / 2, 3 max_tokens / 2) (mean max_tokens), so clients finish
    at different steps as real traffic does, instead of in lock-step waves."""
    return max(1, args.max_tokens // 2 + index * args.max_tokens // args.clients)


async def client(url: str, model: str, index: int, args: argparse.Namespace, phase: Phase, expected: dict[int, str],
                 until: float) -> None:  # fmt: skip
    body = {
        "model": model, "messages": [{"role": "user", "content": f"Write two sentences about {TOPICS[index % len(TOPICS)]}."}],
        "max_tokens": max_tokens(index, args), "temperature": 0.8, "seed": 1000 + index, "stream": True,
        "stream_options": {"include_usage": True},
    }  # fmt: skip
    while time.monotonic() < until:
        try:
            text, tokens, first = await stream_chat(url, body)
        except Exception as e:  # counted and reported: the bench must see every failure
            phase.errors.append(f"client {index}: {e}")
            continue
        phase.requests += 1
        phase.tokens += tokens
        phase.ttft.append(first)
        if phase.check and expected.setdefault(index, text) != text:
            phase.mismatches += 1


def run_phase(
    name: str,
    args: argparse.Namespace,
    max_batch: int,
    threads: str,
    expected: dict[int, str],
    precision: str = "fp32",
) -> Phase:
    proc, url = start_server(args.model, max_batch, threads, args.clients, precision)
    phase = Phase(name, check=precision == "fp32")
    try:
        import urllib.request

        with urllib.request.urlopen(url + "/v1/models") as response:
            model = json.loads(response.read())["data"][0]["id"]
        asyncio.run(stream_chat(url, {"model": model, "messages": [{"role": "user", "content": "Hi"}],
                                      "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}}))  # fmt: skip  # warm-up
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                phase.rss.append(rss_mb(proc.pid))
                stop.wait(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()

        async def load() -> None:
            until = time.monotonic() + args.seconds
            await asyncio.gather(
                *(client(url, model, i, args, phase, expected, until) for i in range(args.clients))
            )

        asyncio.run(load())
        phase.seconds = time.monotonic() - started
        stop.set()
        sampler.join()
        phase.rss.append(rss_mb(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return phase


def health_rate(seconds: float = 2.0) -> float:
    """/health round trips per second on one keep-alive connection, from an in-process server (no model work)."""
    import socket

    from llmlab.serving.http import HTTPServer, Response

    async def handler(request):  # the cheapest route: what the HTTP layer itself costs
        return Response.json({"status": "ok"})

    loop = asyncio.new_event_loop()
    server = HTTPServer(handler, "127.0.0.1", 0)
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result()
    sock = socket.create_connection(("127.0.0.1", server.port))
    request = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        sock.sendall(request)
        data = b""
        while not data.endswith(b'"ok"}'):
            data += sock.recv(4096)
        count += 1
    sock.close()
    loop.call_soon_threadsafe(loop.stop)
    return count / (time.monotonic() - started)


def report(phase: Phase) -> str:
    ttft = sorted(phase.ttft) or [float("nan")]
    p95 = ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))]
    rss = phase.rss or [0.0]
    rate = phase.tokens / max(phase.seconds, 1e-9)
    differ = phase.mismatches if phase.check else "-"
    return (f"| {phase.name} | {phase.requests} | {len(phase.errors)} | {differ} | {rate:.1f} | "
            f"{statistics.median(ttft):.2f} | {p95:.2f} | {rss[0]:.0f} / {max(rss):.0f} / {rss[-1]:.0f} |")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--max-tokens", type=int, default=32, help="mean new tokens a request (spread +-50%%)"
    )
    parser.add_argument("--no-int8", dest="int8", action="store_false", help="skip the int8 phase")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each batched phase, interleaved")
    args = parser.parse_args()
    expected: dict[int, str] = {}
    phases = [run_phase("solo (max batch 1, threads all)", args, 1, "all", expected)]
    configs = [("all", "fp32"), ("spare-one", "fp32")] + ([("all", "int8")] if args.int8 else [])
    for _ in range(args.repeats):  # interleaved, so a change in the machine's load hits every config alike
        for threads, precision in configs:
            name = f"batched {precision} (max batch {args.clients}, threads {threads})"
            phases.append(run_phase(name, args, args.clients, threads, expected, precision))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.clients} streaming clients, {args.seconds:g} s a phase, {args.max_tokens} new tokens a request, "
          f"{args.model}; {os.cpu_count()} CPUs, load average {load}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")  # fmt: skip
    print(
        "| phase | requests | errors | differ from solo | tokens/s | TTFT p50 s | TTFT p95 s | server RSS MB start / peak / end |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for phase in phases:
        print(report(phase))
    solo = phases[0].tokens / max(phases[0].seconds, 1e-9)
    rates: dict[str, list[float]] = {}
    for phase in phases[1:]:
        rates.setdefault(phase.name, []).append(phase.tokens / max(phase.seconds, 1e-9))
    for name, values in rates.items():
        print(f"ratio {name} / solo: {statistics.median(values) / max(solo, 1e-9):.2f}x throughput"
              f" (median of {len(values)})")  # fmt: skip
    for phase in phases:
        for error in phase.errors[:3]:
            print(f"  {phase.name}: {error}")
    print(f"http layer alone: {health_rate():.0f} /health round trips per second on one connection")
    return 1 if any(p.errors or p.mismatches for p in phases) else 0


if __name__ == "__main__":
    raise SystemExit(main())
