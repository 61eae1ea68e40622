"""The router: the node-wide service that takes one OpenAI request to a provider, local or a
peer's, with the target decided, retries, breakers, load and the request record."""

from __future__ import annotations

from gate_runner.router.proxy import ClientGone, Proxy, RequestOutcome, send_error

__all__ = ("ClientGone", "Proxy", "RequestOutcome", "send_error")
