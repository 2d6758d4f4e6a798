"""`now`: the current date and time, in UTC or an IANA time zone (zoneinfo)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from llmlab.agents.tools import ToolExample, tool


@tool(
    name="now",
    reads=True,
    timeout=5.0,
    examples=[
        ToolExample(
            "What time is it in Paris?",
            {"timezone": "Europe/Paris"},
            "2026-01-15 14:02:11 Europe/Paris (Thursday)",
            "It is 14:02 on Thursday in Paris.",
        )
    ],
)
def now(timezone: str = "UTC") -> str:
    """The current date and time, e.g. "2026-12-04 18:31:52 UTC (Friday)".

    Args:
        timezone: an IANA time zone such as "Europe/Paris"; UTC when not given.
    """
    try:
        zone = dt.UTC if timezone.upper() == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {timezone!r}; use an IANA name such as Europe/Paris, or UTC"
        ) from None
    stamp = dt.datetime.now(zone)
    return f"{stamp:%Y-%m-%d %H:%M:%S} {timezone if timezone.upper() != 'UTC' else 'UTC'} ({stamp:%A})"
