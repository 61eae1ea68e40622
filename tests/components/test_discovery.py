"""The `discovery` component: probes its targets through the provider factory's backends and
registers what answers, against the recorded-contract Ollama server and a dead port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apscheduler import AsyncScheduler

from gate_runner.components.discovery import DiscoveryComponent
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


def discovery(*targets: dict[str, str], interval: str = "30s", **more: Any) -> dict[str, Any]:
    return {
        "providers": {
            "discovery": {"enabled": True, "interval": interval, "targets": list(targets)},
            **more,
        }
    }


def ollama_at(url: str, name: str = "ollama") -> dict[str, str]:
    return {"name": name, "kind": "ollama", "url": url}


def test_desired_is_one_slice_when_enabled(tmp_path: Path) -> None:
    component = DiscoveryComponent(providers=ProviderRegistry(), scheduler=AsyncScheduler())
    assert component.desired(node_spec(tmp_path)) == {}  # discovery off
    target = ollama_at("http://127.0.0.1:11434")
    static = [{"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:11500/"}]
    spec = node_spec(tmp_path, **discovery(target, static=static))
    (slice_,) = component.desired(spec).values()
    assert [t.url for t in slice_.targets] == ["http://127.0.0.1:11434"]
    assert slice_.static_urls == {"http://127.0.0.1:11500"}  # normalised: no trailing slash
    assert slice_.static_names == {"ollama"}
    assert slice_.targets[0].timeout == 600.0  # the kind's default, resolved by the spec
    other = node_spec(tmp_path, trust={"mode": "public"}, **discovery(target, static=static))
    assert component.desired(other) == component.desired(spec)


async def test_finds_an_engine_keeps_it_across_an_interval_change_and_drops_it_when_gone(
    tmp_path: Path,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    lmstudio = {"name": "lmstudio", "kind": "openai", "url": dead}
    async with fake_ollama() as engine:
        url = engine.url
        loaded = load_node(tmp_path, **discovery(ollama_at(url), lmstudio))
        async with node_parts(loaded) as parts:
            sup = parts.supervisor
            component = DiscoveryComponent(providers=parts.providers, scheduler=parts.scheduler)
            await converge(sup, component, parts.spec, generation=1)
            ready = condition(sup, "discovery", "discovery")
            assert (ready.status, ready.reason, ready.message) == (True, "Found", f"ollama ({url})")
            entry = parts.providers.get("ollama")
            assert entry is not None and entry.source == "discovered"
            assert tuple(m.id for m in entry.models) == DEFAULT_MODELS
            assert entry.health.state == "Healthy"
            assert parts.providers.get("lmstudio") is None

            faster = node_spec(tmp_path, **discovery(ollama_at(url), lmstudio, interval="10s"))
            plan = await converge(sup, component, faster, generation=2)
            assert [u.key for u in plan.updates] == [("discovery", "discovery")]
            assert status_of(sup, "discovery", "discovery").restarts == 0
            assert parts.providers.get("ollama") is entry  # not dropped and found anew

            # The engine stops. One missed probe is a blip; the second drops it.
            await engine.stop()
            await component.probe()
            assert parts.providers.get("ollama") is entry
            await component.probe()
            assert parts.providers.get("ollama") is None
            gone = condition(sup, "discovery", "discovery")
            assert (gone.status, gone.reason) == (True, "NoneFound")


async def test_a_found_engine_does_not_take_a_static_providers_name(tmp_path: Path) -> None:
    async with fake_ollama() as engine:
        url = engine.url
        static = [{"name": "ollama", "kind": "ollama", "url": "http://127.0.0.1:9"}]
        loaded = load_node(tmp_path, **discovery(ollama_at(url), static=static))
        async with node_parts(loaded) as parts:
            component = DiscoveryComponent(providers=parts.providers, scheduler=parts.scheduler)
            await converge(parts.supervisor, component, parts.spec, generation=1)
            entry = parts.providers.get("ollama-discovered")
            assert entry is not None and tuple(m.id for m in entry.models) == DEFAULT_MODELS


async def test_nothing_answering_is_ready_none_found(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with node_parts(load_node(tmp_path, **discovery(ollama_at(dead)))) as parts:
        component = DiscoveryComponent(providers=parts.providers, scheduler=parts.scheduler)
        await converge(parts.supervisor, component, parts.spec, generation=1)
        ready = condition(parts.supervisor, "discovery", "discovery")
        assert (ready.status, ready.reason) == (True, "NoneFound")
        assert f"no engine answered at {dead}" in ready.message
        assert parts.providers.entries() == []
