"""ASGI's types as Gate's HTTP code uses them, in one place (as starlette's ``types.py``)."""

from __future__ import annotations

__all__ = ("ASGIApp", "Message", "Receive", "Scope", "Send")

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
