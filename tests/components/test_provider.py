"""The `provider` component: one static provider, registered while it runs, against the
recorded-contract Ollama server, a dead port and a key that is not set."""

from __future__ import annotations

from pathlib import Path

import pytest
from apscheduler import AsyncScheduler

from gate_runner.components.providers import ProviderComponent
from gate_runner.providers.registry import ProviderRegistry
from tests.components.parts import (
    condition,
    converge,
    fake_ollama,
    load_node,
    node_parts,
    node_spec,
    status_of,
)
from tests.fakes.ollama import DEFAULT_MODELS
from tests.rig import free_port

pytestmark = pytest.mark.anyio


def static(name: str, url: str, **more: object) -> dict[str, object]:
    return {"providers": {"static": [{"name": name, "kind": "ollama", "url": url, **more}]}}


def test_desired_is_one_slice_per_static_provider(tmp_path: Path) -> None:
    component = ProviderComponent(providers=ProviderRegistry(), scheduler=AsyncScheduler())
    assert component.desired(node_spec(tmp_path)) == {}
    spec = node_spec(tmp_path, **static("local", "http://127.0.0.1:11434"))
    (slice_,) = component.desired(spec).values()
    assert (slice_.spec.name, slice_.spec.url, slice_.rank) == (
        "local",
        "http://127.0.0.1:11434",
        0,
    )
    assert slice_.max_response_body == spec.limits.max_response_body
    other = node_spec(
        tmp_path, trust={"mode": "public"}, **static("local", "http://127.0.0.1:11434")
    )
    assert component.desired(other) == component.desired(spec)


async def test_ready_with_its_models_and_a_new_timeout_swaps_the_backend(tmp_path: Path) -> None:
    async with fake_ollama() as engine:
        url = engine.url
        async with node_parts(load_node(tmp_path, **static("local", url))) as parts:
            sup = parts.supervisor
            provider = ProviderComponent(providers=parts.providers, scheduler=parts.scheduler)
            await converge(sup, provider, parts.spec, generation=1)
            ready = condition(sup, "provider", "local")
            assert (ready.status, ready.reason) == (True, "Healthy")
            assert ready.message.startswith(f"{len(DEFAULT_MODELS)} models, ")
            assert condition(sup, "provider", "local", "Degraded").status is False
            entry = parts.providers.get("local")
            assert entry is not None and entry.source == "static"
            assert tuple(m.id for m in entry.models) == DEFAULT_MODELS

            # In place: the entry stays registered (no gap in /v1/models), its backend changes.
            before = entry.backend
            await converge(
                sup,
                provider,
                node_spec(tmp_path, **static("local", url, timeout="5s")),
                generation=2,
            )
            assert status_of(sup, "provider", "local").restarts == 0
            assert parts.providers.get("local") is entry and entry.backend is not before
            assert entry.backend.timeout == 5.0  # type: ignore[attr-defined]

        # Stopped: unregistered.
        assert parts.providers.get("local") is None


async def test_a_dead_url_is_ready_but_unhealthy(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with node_parts(load_node(tmp_path, **static("gone", dead))) as parts:
        sup = parts.supervisor
        provider = ProviderComponent(providers=parts.providers, scheduler=parts.scheduler)
        await converge(sup, provider, parts.spec, generation=1)
        ready = condition(sup, "provider", "gone")
        # Registered and Ready (it may come up later), but its health says it is not there.
        assert (ready.status, ready.reason) == (True, "Unhealthy")
        degraded = condition(sup, "provider", "gone", "Degraded")
        assert (degraded.status, degraded.reason) == (True, "Unhealthy")
        assert "Connection refused" in degraded.message
        assert parts.providers.get("gone") is not None


async def test_an_api_key_variable_that_is_not_set_is_permanent(tmp_path: Path) -> None:
    spec = {
        "providers": {
            "static": [
                {
                    "name": "hosted",
                    "kind": "openai",
                    "url": "http://127.0.0.1:9/v1",
                    "apiKeyEnv": "GATE_TEST_UNSET_KEY",
                }
            ]
        }
    }
    async with node_parts(load_node(tmp_path, **spec)) as parts:
        sup = parts.supervisor
        provider = ProviderComponent(providers=parts.providers, scheduler=parts.scheduler)
        await converge(sup, provider, parts.spec, generation=1)
        failed = condition(sup, "provider", "hosted")
        assert (failed.status, failed.reason) == (False, "PermanentError")
        assert "GATE_TEST_UNSET_KEY is not set" in failed.message
        assert parts.providers.get("hosted") is None
