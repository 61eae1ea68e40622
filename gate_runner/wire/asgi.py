"""ASGI's types as Gate's HTTP code uses them, in one place (as starlette's ``types.py``)."""

from __future__ import annotations

__all__ = ("ASGIApp", "Message", "Receive", "Scope", "Send", "drain_body")

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# What a refusal reads of a request body before it answers, and for how long; past either
# the answer goes out anyway and the connection closes.
DRAIN_LIMIT = 1 << 20
DRAIN_TIMEOUT = 5.0


async def drain_body(receive: Receive, *, limit: int = DRAIN_LIMIT) -> None:
    """Read and drop an unread request body (up to ``limit`` bytes, for DRAIN_TIMEOUT),
    so that a refusal keeps the connection usable: hypercorn closes a connection whose
    request body is still arriving when the response ends. Only for a request whose body
    nobody has read: once it has all arrived, the next receive waits for a disconnect."""
    taken = 0
    with anyio.move_on_after(DRAIN_TIMEOUT):
        while taken <= limit:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            taken += len(message.get("body", b""))
            if not message.get("more_body", False):
                return
