"""Provider backends (ollama, openai-compatible, in-process llama.cpp) and their registry."""

from __future__ import annotations

from gate_runner.providers.base import Backend, Health, ModelInfo, Reply, UpstreamRequest
from gate_runner.providers.registry import ProviderEntry, ProviderRegistry

__all__ = (
    "Backend",
    "Health",
    "ModelInfo",
    "ProviderEntry",
    "ProviderRegistry",
    "Reply",
    "UpstreamRequest",
)
