"""The OpenAI-compatible API: the `api` component, its ASGI app and the forwarding hot path."""

from __future__ import annotations

from gate_runner.components.api.component import ApiComponent, ApiSlice

__all__ = ("ApiComponent", "ApiSlice")
