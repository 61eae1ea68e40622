"""The pairing methods through the real dispatcher and contracts, against a real state.db in
tmp_path. The node is a small stand-in (a spec document and a generation) and ``peers.add``
a recorder: what reaches the spec through the real peers.add is for the end-to-end tests
once the methods are wired into the control server (tests/cli/test_pairing.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gate_runner.components.control.contract import PAIRING_CONTRACTS
from gate_runner.components.control.pairing import dialable_addrs, pairing_methods
from gate_runner.components.control.rpc import Dispatcher, InvalidParams
from gate_runner.identity import Identity
from gate_runner.state import StateDB
from gate_runner.state.pending import PendingPeers
from gate_runner.wire.invite import make_invite, parse_invite
from gate_runner.wire.jsonrpc import GATE_ERROR, INVALID_PARAMS

pytestmark = pytest.mark.anyio

ME = Identity.from_seed(bytes(range(32)))
FRIEND = Identity.from_seed(bytes(range(1, 33)))
STRANGER = Identity.from_seed(bytes(range(2, 34)))
DAY = 86400.0


class FakeNode:
    """What the pairing methods read of the node: its name and its spec document."""

    def __init__(self) -> None:
        self.generation = 1
        self.peers: list[dict[str, Any]] = [
            {"name": "carol", "id": STRANGER.node_id.hex}  # written in hex: ids are normalised
        ]

    def status(self) -> dict[str, Any]:
        return {"name": "alice", "spec": {"generation": self.generation}}

    def spec_document(self) -> dict[str, Any]:
        return {"apiVersion": "gate.hellas.ai/v1", "kind": "Node", "spec": {"peers": self.peers}}


class AddPeer:
    """Records each peers.add call and adds the peer as the real one would."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, params: dict[str, Any]) -> Any:
        self.calls.append(params)
        if any(p["name"] == params["name"] for p in self.node.peers):
            raise InvalidParams(f"a peer named {params['name']!r} exists; remove it first")
        self.node.peers.append({"name": params["name"], "id": params["id"]})
        self.node.generation += 1
        return {"generation": self.node.generation, "changed": True, "dryRun": False, "diff": ""}


class Rig:
    def __init__(self, db: StateDB, listen: list[str]) -> None:
        self.node = FakeNode()
        self.add_peer = AddPeer(self.node)
        self.pending = PendingPeers(db)
        self.listen = listen
        methods = pairing_methods(
            node=self.node,  # type: ignore[arg-type]
            identity=ME,
            pending=self.pending,
            listen_addrs=lambda: self.listen,
            add_peer=self.add_peer,
        )
        self.dispatcher = Dispatcher(methods, PAIRING_CONTRACTS)
        self._id = 0

    async def reply(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        message = {"jsonrpc": "2.0", "method": method, "params": params or {}, "id": self._id}
        reply = await self.dispatcher.handle_one(message)
        assert reply is not None
        return reply

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = await self.reply(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    async def error(
        self, method: str, params: dict[str, Any], code: int, *words: str
    ) -> dict[str, Any]:
        peers_before = [dict(p) for p in self.node.peers]
        reply = await self.reply(method, params)
        assert "error" in reply, reply
        error: dict[str, Any] = reply["error"]
        assert error["code"] == code, error
        for word in words:
            assert word in error["message"], error
        assert self.node.peers == peers_before, "nothing is written on bad input"
        return error


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[StateDB]:
    d = StateDB(tmp_path / "state.db")
    yield d
    d.close()


@pytest.fixture
def rig(db: StateDB) -> Rig:
    return Rig(db, ["/ip4/127.0.0.1/tcp/41145"])


def friend_invite(*, name: str = "bob", ttl: float = 7 * DAY, now: float | None = None) -> str:
    return make_invite(
        identity=FRIEND,
        name=name,
        addrs=["/ip4/203.0.113.7/tcp/41145"],
        ttl=ttl,
        now=time.time() if now is None else now,
    ).text


# -- peers.invite ------------------------------------------------------------------------------


async def test_the_invite_is_this_nodes_signed_card(rig: Rig) -> None:
    result = await rig.call("peers.invite")
    invite = parse_invite(result["invite"], time.time(), own_peer_id=FRIEND.node_id.peer_id)
    assert invite.peer_id == ME.node_id.peer_id == result["peerId"]
    assert invite.name == result["name"] == "alice"
    assert invite.addrs == ("/ip4/127.0.0.1/tcp/41145",) and result["addrs"] == list(invite.addrs)
    assert abs(invite.expires_at - (time.time() + 7 * DAY)) < 5
    assert result["link"] == f"http://127.0.0.1:8145/#invite={result['invite']}"
    assert "note" not in result


async def test_the_invite_takes_a_ttl_within_bounds(rig: Rig) -> None:
    result = await rig.call("peers.invite", {"ttl": 3600})
    invite = parse_invite(result["invite"], time.time(), own_peer_id=FRIEND.node_id.peer_id)
    assert abs(invite.expires_at - (time.time() + 3600)) < 5
    await rig.error("peers.invite", {"ttl": 10}, INVALID_PARAMS, "ttl")
    await rig.error("peers.invite", {"ttl": 31 * DAY}, INVALID_PARAMS, "ttl")


async def test_an_invite_without_a_dialable_address_says_so(db: StateDB) -> None:
    rig = Rig(db, [])
    result = await rig.call("peers.invite")
    assert result["addrs"] == []
    assert "no address a friend can dial" in result["note"]


def test_dialable_addrs_resolve_wildcards_and_drop_what_no_one_can_dial() -> None:
    me = ME.node_id.peer_id
    addrs = dialable_addrs(
        [
            "/ip4/127.0.0.1/tcp/41145",
            f"/ip4/127.0.0.1/tcp/41145/p2p/{me}",  # the same address, with our id
            f"/ip4/127.0.0.1/tcp/41146/p2p/{FRIEND.node_id.peer_id}",  # someone else's
            "/ip4/0.0.0.0/tcp/41147",
            "not an address",
        ],
        peer_id=me,
    )
    assert addrs[0] == "/ip4/127.0.0.1/tcp/41145"
    assert all("0.0.0.0" not in a and "41146" not in a for a in addrs)
    # The wildcard became the address this host routes out of (none in a sandbox without
    # a route: then it is dropped rather than listed undialable).
    assert len(addrs) in (1, 2)
    assert all(a.endswith("/tcp/41147") for a in addrs[1:])


# -- peers.accept ------------------------------------------------------------------------------


async def test_accepting_an_invite_adds_its_node_through_peers_add(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="bob")
    result = await rig.call(
        "peers.accept",
        {
            "invite": friend_invite(),
            "trusted": True,
            "models": ["llama3*"],
            "rateLimit": {"requestsPerMinute": 60},
            "expectedGeneration": 1,
        },
    )
    assert rig.add_peer.calls == [
        {
            "name": "bob",
            "id": FRIEND.node_id.peer_id,
            "addrs": ["/ip4/203.0.113.7/tcp/41145"],
            "trusted": True,
            "models": ["llama3*"],
            "rateLimit": {"requestsPerMinute": 60},
            "expectedGeneration": 1,
        }
    ]
    assert result["generation"] == 2
    assert result["peer"] == {
        "name": "bob",
        "peerId": FRIEND.node_id.peer_id,
        "addrs": ["/ip4/203.0.113.7/tcp/41145"],
    }
    # The friend had dialed in before we accepted: now known, so no longer pending.
    assert await rig.pending.list() == []


async def test_accept_knows_the_peer_without_trusting_it_by_default(rig: Rig) -> None:
    await rig.call("peers.accept", {"invite": friend_invite(), "name": "bobby"})
    (call,) = rig.add_peer.calls
    assert call["name"] == "bobby" and "trusted" not in call


async def test_accept_refuses_models_without_trusted(rig: Rig) -> None:
    await rig.error(
        "peers.accept", {"invite": friend_invite(), "models": ["x"]}, INVALID_PARAMS, "trusted"
    )


async def test_accept_refuses_a_tampered_invite(rig: Rig) -> None:
    text = friend_invite()
    # Flip one character in the middle of the body (base64url keeps it valid text).
    i = len(text) // 2
    tampered = text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1 :]
    error = await rig.error("peers.accept", {"invite": tampered}, GATE_ERROR, "invite", "signature")
    assert error["data"]["hint"]


async def test_accept_refuses_an_expired_invite(rig: Rig) -> None:
    stale = friend_invite(ttl=3600, now=time.time() - 7200)
    await rig.error("peers.accept", {"invite": stale}, GATE_ERROR, "expired")


async def test_accept_refuses_our_own_invite(rig: Rig) -> None:
    own = (await rig.call("peers.invite"))["invite"]
    await rig.error("peers.accept", {"invite": own}, GATE_ERROR, "this node's own")


async def test_accept_refuses_a_name_already_taken(rig: Rig) -> None:
    error = await rig.error(
        "peers.accept",
        {"invite": friend_invite(name="carol")},
        GATE_ERROR,
        "a peer named 'carol' is already in the spec",
    )
    assert "--name" in error["data"]["hint"]
    assert rig.add_peer.calls == []


async def test_accept_refuses_a_peer_already_known(rig: Rig) -> None:
    invite = make_invite(identity=STRANGER, name="dave", addrs=[], ttl=DAY, now=time.time())
    await rig.error(
        "peers.accept", {"invite": invite.text}, GATE_ERROR, "already in the spec, as 'carol'"
    )


async def test_accept_refuses_an_oversized_paste_with_words(rig: Rig) -> None:
    await rig.error(
        "peers.accept", {"invite": "A" * 1_500_000}, GATE_ERROR, "far more than an invite"
    )


async def test_accept_refuses_unknown_params(rig: Rig) -> None:
    await rig.error(
        "peers.accept", {"invite": friend_invite(), "trust": True}, INVALID_PARAMS, "trust"
    )


# -- pending requests: list, approve, ignore ---------------------------------------------------


async def test_pending_lists_strangers_and_drops_peers_since_added(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="bob", address="10.0.0.2:5")
    await rig.pending.record(peer_id=STRANGER.node_id.peer_id)  # carol: in the spec already
    (listed,) = await rig.call("peers.pending")
    assert listed["peerId"] == FRIEND.node_id.peer_id
    assert (listed["name"], listed["address"], listed["count"]) == ("bob", "10.0.0.2:5", 1)
    assert [r.peer_id for r in await rig.pending.list()] == [FRIEND.node_id.peer_id]


async def test_approving_adds_the_peer_under_its_name_and_drops_the_request(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="bob")
    result = await rig.call(
        "peers.approve", {"peerId": FRIEND.node_id.hex, "trusted": True, "models": ["qwen*"]}
    )
    assert rig.add_peer.calls == [
        {"name": "bob", "id": FRIEND.node_id.peer_id, "trusted": True, "models": ["qwen*"]}
    ]
    assert result["peer"] == {"name": "bob", "peerId": FRIEND.node_id.peer_id, "addrs": []}
    assert await rig.call("peers.pending") == []


async def test_approve_takes_a_name_and_needs_one_when_the_peer_gave_none(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="Bob's Laptop")
    await rig.error(
        "peers.approve", {"peerId": FRIEND.node_id.peer_id}, INVALID_PARAMS, "give the peer a name"
    )
    await rig.call("peers.approve", {"peerId": FRIEND.node_id.peer_id, "name": "bob"})
    assert rig.add_peer.calls[0]["name"] == "bob"


async def test_approve_refuses_a_peer_that_did_not_ask(rig: Rig) -> None:
    await rig.error(
        "peers.approve",
        {"peerId": FRIEND.node_id.peer_id, "name": "bob"},
        INVALID_PARAMS,
        "no pending request",
    )


async def test_approve_refuses_a_peer_id_in_the_wrong_form(rig: Rig) -> None:
    await rig.error(
        "peers.approve", {"peerId": "bob", "name": "bob"}, INVALID_PARAMS, "not a peer id"
    )


async def test_approve_refuses_a_name_already_taken(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="carol")
    await rig.error(
        "peers.approve", {"peerId": FRIEND.node_id.peer_id}, GATE_ERROR, "already in the spec"
    )
    assert [r.peer_id for r in await rig.pending.list()] == [FRIEND.node_id.peer_id]


async def test_ignoring_changes_nothing_but_the_list(rig: Rig) -> None:
    await rig.pending.record(peer_id=FRIEND.node_id.peer_id, name="bob")
    result = await rig.call("peers.ignore", {"peerId": FRIEND.node_id.peer_id})
    assert result == {"ignored": True, "peerId": FRIEND.node_id.peer_id}
    assert await rig.call("peers.pending") == []
    assert rig.add_peer.calls == [] and rig.node.generation == 1
    await rig.error(
        "peers.ignore", {"peerId": FRIEND.node_id.peer_id}, INVALID_PARAMS, "no pending request"
    )
