"""The `certs` component, a stub until the relay lands: asked for only when the public
endpoint is on, and then plainly not Ready."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate_runner.components.certs import NOT_IMPLEMENTED, CertsComponent
from tests.components.parts import (
    condition,
    converge,
    load_node,
    node_parts,
    node_spec,
    status_of,
)

pytestmark = pytest.mark.anyio

RELAY = "/dns4/relay.example.net/tcp/41146/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
OTHER_RELAY = RELAY.replace("relay.example.net", "relay2.example.net")


def public(*relays: str, enabled: bool = True) -> dict[str, Any]:
    return {"endpoints": {"public": {"enabled": enabled, "relays": list(relays)}}}


def test_desired_only_when_the_public_endpoint_is_on(tmp_path: Path) -> None:
    certs = CertsComponent()
    assert certs.desired(node_spec(tmp_path)) == {}
    assert certs.desired(node_spec(tmp_path, **public(RELAY, enabled=False))) == {}
    spec = node_spec(tmp_path, **public(RELAY))
    (slice_,) = certs.desired(spec).values()
    assert slice_.enabled and slice_.relays == (RELAY,)
    other = node_spec(tmp_path, trust={"mode": "public"}, **public(RELAY))
    assert certs.desired(other) == certs.desired(spec)


async def test_not_ready_not_implemented_and_gone_when_turned_off(tmp_path: Path) -> None:
    async with node_parts(load_node(tmp_path, **public(RELAY))) as parts:
        sup, certs = parts.supervisor, CertsComponent()
        await converge(sup, certs, parts.spec, generation=1)
        ready = condition(sup, "certs", "public")
        assert (ready.status, ready.reason) == (False, NOT_IMPLEMENTED)
        assert "set spec.endpoints.public.enabled: false" in ready.message
        assert status_of(sup, "certs", "public").observed_generation == 1  # settled, not stuck

        await converge(sup, certs, node_spec(tmp_path, **public(OTHER_RELAY)), generation=2)
        assert status_of(sup, "certs", "public").restarts == 0  # in place: nothing runs

        await converge(
            sup, certs, node_spec(tmp_path, **public(RELAY, enabled=False)), generation=3
        )
        assert sup.statuses() == []
