"""Making a backend from a provider's spec."""

from __future__ import annotations

__all__ = ("build_backend",)

import os

from gate_runner.errors import PermanentError
from gate_runner.providers.base import Backend
from gate_runner.providers.ollama import OllamaBackend
from gate_runner.providers.openai import OpenAIBackend
from gate_runner.spec import ProviderSpec


def build_backend(spec: ProviderSpec, *, max_response_body: int = 64 << 20) -> Backend:
    """The backend for a static provider, or for an engine that discovery found (given a
    spec made from its target). ``max_response_body``: spec.limits.maxResponseBody."""
    if spec.kind == "ollama":
        assert spec.url is not None  # the spec loader requires it
        return OllamaBackend(name=spec.name, url=spec.url, timeout=spec.timeout)
    if spec.kind == "openai":
        assert spec.url is not None
        api_key = None
        if spec.api_key_env:
            api_key = os.environ.get(spec.api_key_env)
            if not api_key:
                raise PermanentError(
                    f"provider {spec.name}: environment variable {spec.api_key_env} is not set",
                    hint="export it before `gate up`, or remove apiKeyEnv",
                )
        return OpenAIBackend(
            name=spec.name,
            url=spec.url,
            api_key=api_key,
            timeout=spec.timeout,
            max_response_bytes=max_response_body,
        )
    if spec.kind == "llamacpp":
        from gate_runner.providers.llamacpp import LlamaCppBackend, llama_available

        assert spec.model is not None
        if not llama_available():
            raise PermanentError(
                f"provider {spec.name}: llama-cpp-python is not installed",
                hint="install the extra: pip install 'gate-runner[llamacpp]' "
                "(or scripts/llama-wheel.sh .venv)",
            )
        return LlamaCppBackend(name=spec.name, model_path=spec.model)
    raise PermanentError(f"provider {spec.name}: unknown kind {spec.kind!r}")
