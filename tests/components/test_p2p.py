"""The `p2p` component: the libp2p host on loopback port 0, up, changed in place and stopped.
Importing py-libp2p takes about 2 s, so this module starts the host once."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from gate_runner.components.p2p import P2PComponent
from tests.components.parts import (
    condition,
    converge,
    load_node,
    node_parts,
    node_spec,
    status_of,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def test_listens_takes_trust_in_place_and_stops_cleanly(tmp_path: Path) -> None:
    async with node_parts(load_node(tmp_path)) as parts:
        sup = parts.supervisor
        p2p = P2PComponent(
            identity=parts.identity,
            peers=parts.peers,
            providers=parts.providers,
            router=parts.router,
            state=parts.state,
        )
        (slice_,) = p2p.desired(parts.spec).values()
        assert slice_.listen == ("/ip4/127.0.0.1/tcp/0",)
        # An edit elsewhere (the API's address) leaves the host alone.
        elsewhere = node_spec(tmp_path, listen={"api": "127.0.0.1:1"})
        assert p2p.desired(elsewhere) == p2p.desired(parts.spec)

        await converge(sup, p2p, parts.spec, generation=1)
        await wait_until(lambda: status_of(sup, "p2p", "p2p").ready, what="Listening", within=20)
        ready = condition(sup, "p2p", "p2p")
        assert ready.reason == "Listening"
        peer_id = parts.identity.node_id.peer_id
        assert ready.message.startswith(f"{peer_id} on /ip4/127.0.0.1/tcp/")
        port = int(ready.message.rpartition("/tcp/")[2].split("/")[0])
        assert port != 0
        stream = await anyio.connect_tcp("127.0.0.1", port)  # it accepts
        await stream.aclose()

        # Trust changes in place: no new host, no dropped links.
        await converge(sup, p2p, node_spec(tmp_path, trust={"mode": "public"}), generation=2)
        status = status_of(sup, "p2p", "p2p")
        assert status.restarts == 0 and status.ready and status.observed_generation == 2

        with anyio.fail_after(5):
            await sup.stop_all()
        assert sup.statuses() == []
        with pytest.raises(OSError):  # the host's socket is closed
            await anyio.connect_tcp("127.0.0.1", port)
