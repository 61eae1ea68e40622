"""A provider's view of its engine: only the models its allowlist matches, under its name
prefix (spec.providers.static[].models and .prefix), as Open WebUI's connections have.

It wraps the backend, so the models it lists are the ones the registry holds, and from there
what /v1/models, routing, the P2P hello and providers.list all see; a request reaches the
engine with the engine's own name for the model."""

from __future__ import annotations

__all__ = ("ScopedBackend", "scoped")

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from fnmatch import fnmatchcase

from gate_runner.providers.base import Backend, Health, ModelInfo, Reply, UpstreamRequest
from gate_runner.spec import ProviderSpec
from gate_runner.wire.openai import OpenAIError


def scoped(backend: Backend, spec: ProviderSpec) -> Backend:
    """``backend`` as ``spec``'s allowlist and prefix show it (itself when it has neither)."""
    if spec.models is None and not spec.prefix:
        return backend
    return ScopedBackend(backend, models=spec.models, prefix=spec.prefix)


class ScopedBackend:
    """``inner`` with its models filtered by ``models`` (globs; None: all) and renamed to
    ``prefix`` + name."""

    def __init__(self, inner: Backend, *, models: tuple[str, ...] | None, prefix: str) -> None:
        self.inner = inner
        self.models = models
        self.prefix = prefix
        self.name = inner.name
        self.kind = inner.kind
        self.abortable = inner.abortable

    @property
    def url(self) -> str | None:
        # providers.list shows where the engine is.
        url: str | None = getattr(self.inner, "url", None)
        return url

    def allows(self, engine_model: str) -> bool:
        """Whether the allowlist lets this node offer the engine's ``engine_model``."""
        return self.models is None or any(fnmatchcase(engine_model, g) for g in self.models)

    def engine_name(self, model: str) -> str | None:
        """The engine's name for the offered ``model``, or None when this provider does not
        offer it (no prefix, or a model the allowlist hides)."""
        if not model.startswith(self.prefix):
            return None
        bare = model[len(self.prefix) :]
        return bare if bare and self.allows(bare) else None

    async def start(self) -> None:
        await self.inner.start()

    async def fetch_models(self) -> list[ModelInfo]:
        return [
            replace(m, id=self.prefix + m.id)
            for m in await self.inner.fetch_models()
            if self.allows(m.id)
        ]

    async def check_health(self) -> Health:
        return await self.inner.check_health()

    @asynccontextmanager
    async def open(self, request: UpstreamRequest) -> AsyncIterator[Reply]:
        model = request.parsed.model
        bare = self.engine_name(model)
        if bare is None:
            # The router only picks this provider for a model it listed; a request reaching
            # here anyway must not slip past the allowlist.
            raise OpenAIError.model_not_found(model)
        if bare != model:
            body = request.parsed.body_for(bare)
            parsed = replace(request.parsed, model=bare, raw=body)
            request = replace(request, parsed=parsed, raw_body=json.dumps(body).encode())
        async with self.inner.open(request) as reply:
            yield reply

    async def aclose(self) -> None:
        await self.inner.aclose()
