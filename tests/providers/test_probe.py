"""The one prober (providers/probe.py): `gate init`'s engine probe and the discovery component
give the same answer for the same engine, found or not, since both go through it."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.routing import Route

from gate_runner.cli.draft import Probe, Provider, probe_all
from gate_runner.components.discovery import DiscoveryComponent
from gate_runner.providers.probe import probe_engine
from gate_runner.spec import ProviderSpec
from tests.components.parts import Engine, converge, fake_ollama, load_node, node_parts
from tests.fakes.ollama import VERSION, FakeOllama
from tests.rig import free_port

pytestmark = pytest.mark.anyio

MODELS = ("llama3:8b", "qwen2:0.5b")


async def wizard_and_discovery(tmp_path: Path, target: Provider) -> tuple[Probe, Any]:
    """What the wizard says of ``target``, and the provider entry discovery registers for it
    (None: it registered nothing)."""
    (probe,) = await probe_all([target])
    discovery = {
        "enabled": True,
        "targets": [{"name": target.name, "kind": target.kind, "url": target.location}],
    }
    async with node_parts(load_node(tmp_path, providers={"discovery": discovery})) as parts:
        component = DiscoveryComponent(providers=parts.providers, scheduler=parts.scheduler)
        await converge(parts.supervisor, component, parts.spec, generation=1)
        return probe, parts.providers.get(target.name)


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with fake_ollama(MODELS) as running:
        yield running


@contextlib.asynccontextmanager
async def ollama_without_version() -> AsyncIterator[str]:
    """An Ollama-like server with /api/tags but no /api/version (404): not an engine the
    node would use, since discovery's health check is /api/version."""
    fake = FakeOllama(models=MODELS)
    app: Any = Starlette(routes=[Route("/api/tags", fake.tags)])
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.graceful_timeout = 0.5
    shutdown = anyio.Event()
    async with anyio.create_task_group() as tg:
        binds = await tg.start(
            functools.partial(serve, app, config, shutdown_trigger=shutdown.wait, mode="asgi")
        )
        try:
            yield binds[0]
        finally:
            shutdown.set()


async def test_an_engine_has_the_same_models_for_both(tmp_path: Path, engine: Engine) -> None:
    probe, entry = await wizard_and_discovery(tmp_path, Provider("ollama", "ollama", engine.url))
    assert probe.found and entry is not None
    assert probe.models == MODELS
    assert tuple(m.id for m in entry.models) == probe.models
    assert probe.line() == (
        f"ollama at {engine.url}: found Ollama {VERSION} with 2 models (llama3:8b, qwen2:0.5b)"
    )


async def test_an_engine_of_another_kind_is_absent_for_both(tmp_path: Path, engine: Engine) -> None:
    # Ollama's API has no /v1/models: as an OpenAI-compatible server, nothing is there.
    target = Provider("lmstudio", "openai", f"{engine.url}/v1")
    probe, entry = await wizard_and_discovery(tmp_path, target)
    assert not probe.found and entry is None
    assert probe.detail == f"GET {engine.url}/v1/models answered 404"


async def test_an_engine_discovery_would_not_use_is_not_offered(tmp_path: Path) -> None:
    async with ollama_without_version() as url:
        probe, entry = await wizard_and_discovery(tmp_path, Provider("ollama", "ollama", url))
    assert not probe.found and entry is None
    assert probe.detail == f"GET {url}/api/version answered 404"


async def test_a_dead_port_is_absent_for_both(tmp_path: Path) -> None:
    target = Provider("ollama", "ollama", f"http://127.0.0.1:{free_port()}")
    probe, entry = await wizard_and_discovery(tmp_path, target)
    assert not probe.found and entry is None
    assert probe.line() == f"ollama at {target.location}: nothing there (connection refused)"


async def test_probe_engine_reports_health_version_and_models(engine: Engine) -> None:
    spec = ProviderSpec(name="ollama", kind="ollama", url=engine.url, timeout=60.0)
    result = await probe_engine(spec)
    assert result.found and result.kind == "ollama"
    assert (result.health.state, result.health.version) == ("Healthy", VERSION)
    assert result.models is not None and tuple(m.id for m in result.models) == MODELS

    wrong = ProviderSpec(name="ollama", kind="ollama", url=f"{engine.url}/v1", timeout=60.0)
    missing = await probe_engine(wrong)
    assert not missing.found and missing.models is None
    assert missing.why_absent() == f"GET {engine.url}/v1/api/version answered 404"
