"""Probing an engine: is something there, is it the kind of engine it should be, what models
does it serve. The one prober of discovery, of the registry's health checks and of the
`gate init` wizard, so that all three give the same answer for the same engine."""

from __future__ import annotations

__all__ = ("ENGINES", "PROBE_TIMEOUT", "ProbeResult", "probe_backend", "probe_engine")

from dataclasses import dataclass
from typing import Final

import anyio

from gate_runner.errors import GateError
from gate_runner.httpclient import UpstreamConnectError
from gate_runner.providers.base import Backend, Health, ModelInfo
from gate_runner.providers.factory import build_backend
from gate_runner.spec import ProviderSpec
from gate_runner.wire.openai import OpenAIError

# An engine that has not answered both calls (health, then models) within 2 s is taken to be
# absent: discovery probes every interval and must not stall on one target, and the wizard
# must not keep its user waiting.
PROBE_TIMEOUT: Final = 2.0

# What each kind of backend talks to, as a person would name it.
ENGINES: Final = {
    "ollama": "Ollama",
    "openai": "an OpenAI-compatible server",
    "llamacpp": "llama.cpp",
}


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe found: the engine's health, and its models when it listed them
    (None: nothing answered, or the listing failed; the health then says why)."""

    kind: str  # the backend's: ollama, openai, ...
    health: Health
    models: tuple[ModelInfo, ...] | None

    @property
    def found(self) -> bool:
        """An engine answers there: discovery registers it, the wizard offers it."""
        return self.health.state != "Unhealthy"

    def why_absent(self) -> str:
        """Why nothing usable answered, in a few words for a person."""
        failure = self.health.failure
        if isinstance(failure, UpstreamConnectError) and isinstance(
            failure.__cause__, ConnectionRefusedError
        ):
            return "connection refused"
        if isinstance(failure, OpenAIError):
            # Our 502 about its answer (not JSON, no version, no model list): it speaks
            # HTTP, but not this engine's API.
            return f"something answered, but not as {ENGINES.get(self.kind, self.kind)} does"
        if isinstance(failure, GateError):
            return failure.message  # the hint is for an operator of a provider, not here
        return self.health.error or self.health.state


async def probe_backend(backend: Backend, *, within: float = PROBE_TIMEOUT) -> ProbeResult:
    """Check ``backend``'s health, then list its models, both within ``within`` seconds.
    A listing that fails after a good health check makes the engine Degraded."""
    with anyio.move_on_after(within):
        health = await backend.check_health()
        if health.state == "Unhealthy":
            return ProbeResult(backend.kind, health, None)
        try:
            models = tuple(await backend.fetch_models())
        except (GateError, OSError, ValueError, KeyError, TypeError) as e:
            health = Health("Degraded", error=f"cannot list models: {e}", failure=e)
            return ProbeResult(backend.kind, health, None)
        return ProbeResult(backend.kind, health, models)
    return ProbeResult(
        backend.kind, Health("Unhealthy", error=f"no answer within {within:g}s"), None
    )


async def probe_engine(spec: ProviderSpec, *, within: float = PROBE_TIMEOUT) -> ProbeResult:
    """Probe the engine ``spec`` names through the backend a provider of that spec would
    have (providers/factory.py), then close it."""
    backend = build_backend(spec)
    try:
        return await probe_backend(backend, within=within)
    finally:
        await backend.aclose()
