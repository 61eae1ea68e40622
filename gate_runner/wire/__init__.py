"""Wire formats Gate speaks and translates: OpenAI's API, server-sent events, Ollama's and
llama.cpp's APIs, ASGI's types and JSON-RPC's error codes. Pure code: bytes and dicts in,
bytes and dicts out, no I/O."""

from __future__ import annotations

__all__: tuple[str, ...] = ()
