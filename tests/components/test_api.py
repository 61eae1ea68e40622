"""The `api` component: the OpenAI-compatible endpoint on a real socket, asked with httpx,
serving the models of a provider registered from the recorded-contract Ollama server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gate_runner.components.api import ApiComponent
from gate_runner.identity import Identity
from gate_runner.providers.factory import build_backend
from gate_runner.providers.registry import ProviderRegistry
from gate_runner.router import Proxy
from gate_runner.spec import ProviderSpec
from tests.components.parts import (
    Parts,
    condition,
    converge,
    fake_ollama,
    load_node,
    node_parts,
    node_spec,
    status_of,
)
from tests.fakes.ollama import DEFAULT_MODELS

pytestmark = pytest.mark.anyio

KEY_ENV = "GATE_TEST_API_KEY"


def api_of(parts: Parts) -> ApiComponent:
    return ApiComponent(identity=parts.identity, router=parts.router, providers=parts.providers)


async def models(address: str, *, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return await client.get(f"http://{address}/v1/models", headers=headers)


def test_desired_is_the_api_listener(tmp_path: Path) -> None:
    spec = node_spec(tmp_path, listen={"apiKeys": [KEY_ENV], "apiHosts": ["gate.lan"]})
    registry = ProviderRegistry()
    router = Proxy(
        registry=registry,
        routing=spec.routing,
        node_name=spec.name,
        max_body=spec.limits.max_request_body,
        on_start=lambda: None,
        on_done=lambda outcome, started, latency: None,
    )
    component = ApiComponent(identity=Identity.generate(), router=router, providers=registry)
    (slice_,) = component.desired(spec).values()
    assert str(slice_.address) == "127.0.0.1:0"
    assert (slice_.api_keys, slice_.hosts) == ((KEY_ENV,), ("gate.lan",))
    other = node_spec(
        tmp_path, trust={"mode": "public"}, listen={"apiKeys": [KEY_ENV], "apiHosts": ["gate.lan"]}
    )
    assert component.desired(other) == component.desired(spec)


async def test_serves_the_models_and_takes_keys_and_a_new_address_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sesame")
    async with fake_ollama() as engine, node_parts(load_node(tmp_path)) as parts:
        sup, api = parts.supervisor, api_of(parts)
        spec = ProviderSpec(name="local", kind="ollama", url=engine.url, timeout=60.0)
        entry = parts.providers.add(build_backend(spec), source="static")
        await parts.providers.refresh(entry)

        await converge(sup, api, parts.spec, generation=1)
        ready = condition(sup, "api", "api")
        assert (ready.status, ready.reason) == (True, "Listening")
        address = ready.message
        assert address.startswith("127.0.0.1:") and not address.endswith(":0")
        answer = await models(address)
        assert answer.status_code == 200
        listing = answer.json()
        assert listing["object"] == "list"
        assert [m["id"] for m in listing["data"]] == list(DEFAULT_MODELS)

        # API keys and a new address both apply without a restart.
        keyed = node_spec(tmp_path, listen={"apiKeys": [KEY_ENV]})
        await converge(sup, api, keyed, generation=2)
        assert status_of(sup, "api", "api").restarts == 0
        assert (await models(address)).status_code == 401
        assert (await models(address, key="sesame")).status_code == 200

        moved = node_spec(tmp_path, listen={"apiKeys": [KEY_ENV], "api": "127.0.0.2:0"})
        await converge(sup, api, moved, generation=3)
        status = status_of(sup, "api", "api")
        assert status.restarts == 0 and status.ready
        new_address = condition(sup, "api", "api").message
        assert new_address.startswith("127.0.0.2:")
        assert (await models(new_address, key="sesame")).status_code == 200
        parts.providers.remove("local")
        await entry.backend.aclose()


async def test_an_api_key_variable_that_is_not_set_is_permanent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    async with node_parts(load_node(tmp_path, listen={"apiKeys": [KEY_ENV]})) as parts:
        await converge(parts.supervisor, api_of(parts), parts.spec, generation=1)
        failed = condition(parts.supervisor, "api", "api")
        assert (failed.status, failed.reason) == (False, "PermanentError")
        assert f"spec.listen.apiKeys names {KEY_ENV}, which is not set" in failed.message
