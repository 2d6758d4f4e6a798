"""`llmlab serve` settings: what is served, where, and the limits every request is held to."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from llmlab.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


@dataclass
class ServeConfig:
    """Where the server listens and what it lets one request ask for."""

    host: str = "127.0.0.1"
    """Address to listen on; the default answers this machine only. 0.0.0.0 exposes the server to the
    network: give it an --api-key then."""
    port: int = 8000
    """TCP port (0 picks a free one and prints it)."""
    api_key: str | None = None
    """Require `Authorization: Bearer KEY` on every route but /health (the web page asks for it once)."""
    max_batch: int = 16
    """Sequences decoded together (continuous batching: requests join and leave between decode steps)."""
    max_waiting: int = 64
    """Sequences that may wait for a free batch slot; beyond that, requests get 503 (overloaded)."""
    prefill_tokens: int = 512
    """Prompt tokens admitted into the running batch per decode step (a burst of requests is prefilled over
    several steps, so the streams already running keep getting tokens)."""
    max_tokens: int = 1024
    """Most new tokens a request may ask for (max_tokens); also capped by the context window."""
    max_n: int = 8
    """Most choices (n) one request may ask for."""
    max_messages: int = 256
    """Most messages in one chat request."""
    max_body_bytes: int = 1 << 20
    """Largest request body in bytes (413 above it)."""
    max_inputs: int = 256
    """Most texts in one embeddings or completions request."""
    request_timeout: float = 10.0
    """Seconds a client has to send a request's head, and three times that for its body (slow clients
    are cut off with 408)."""
    threads: str = "all"
    """PyTorch threads for the engine thread: all (the server owns the cores), spare-one (one fewer, as the
    CLI), or a number."""
    rankings: str = "ranked.jsonl"
    """Where the web page's feedback ranking saves (the JSONL of `llmlab feedback rank`)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {self.port}")
        for name in (
            "max_batch",
            "prefill_tokens",
            "max_tokens",
            "max_n",
            "max_messages",
            "max_body_bytes",
            "max_inputs",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if self.max_waiting < 0:
            raise ConfigError(f"--max-waiting must be >= 0, got {self.max_waiting}")
        if not self.request_timeout > 0:
            raise ConfigError(f"--request-timeout must be > 0 seconds, got {self.request_timeout}")
        if self.api_key is not None and len(self.api_key) < 8:
            raise ConfigError("--api-key must be at least 8 characters; use a long random string")
        if self.threads not in ("all", "spare-one") and not (
            self.threads.isdigit() and int(self.threads) > 0
        ):
            raise ConfigError(f"--threads must be all, spare-one or a number, got {self.threads!r}")

    @property
    def loopback(self) -> bool:
        """True when only this machine can reach the server."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
