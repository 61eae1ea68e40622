"""The hot-path HTTP/1.1 client: pooled keep-alive connections to a local engine, on trio.

It frames HTTP/1.1 itself (``protocol``): h11's event objects and state machine cost about
a third of the forward's CPU. Its waits take no cancel scope each (``watchdog``): the run's
``Watchdog`` keeps the read timeouts and a caller's ``AbortSignal`` ends an exchange, both
by closing the socket. httpx stays for cold paths (discovery, health checks, ACME);
DESIGN.md section 13 says why.
"""

from __future__ import annotations

__all__ = (
    "AbortSignal",
    "HTTPPool",
    "Response",
    "ResponseTooLarge",
    "UpstreamAborted",
    "UpstreamClosed",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
    "Watchdog",
)

from gate_runner.httpclient.errors import (
    ResponseTooLarge,
    UpstreamAborted,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gate_runner.httpclient.pool import HTTPPool
from gate_runner.httpclient.response import Response
from gate_runner.httpclient.watchdog import AbortSignal, Watchdog
