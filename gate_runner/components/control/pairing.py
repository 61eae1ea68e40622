"""Pairing over the control plane: this node's invite, accepting a friend's, and the pending
requests of peers that dialed in unknown (approve or ignore). Each change to the peers goes
through ``peers.add``, so through the spec and nothing behind the reconciler."""

from __future__ import annotations

__all__ = ("dialable_addrs", "pairing_methods")

import ipaddress
import re
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from gate_runner.components.base import NodeHandle
from gate_runner.components.control.rpc import InvalidParams, Method
from gate_runner.errors import GateError
from gate_runner.identity import Identity, normalise_peer_id
from gate_runner.spec.model import DEFAULT_CONTROL
from gate_runner.spec.multiaddr import (
    MultiaddrError,
    format_multiaddr,
    p2p_id,
    parse_multiaddr,
)
from gate_runner.spec.validate import load_schema
from gate_runner.state.pending import PendingPeers
from gate_runner.wire.invite import (
    DEFAULT_TTL,
    MAX_ADDRS,
    Invite,
    invite_link,
    make_invite,
    parse_invite,
)

# The link opens the friend's own web UI at its default address: the fragment never
# leaves their browser, and their UI reads the invite from it.
_LINK_BASE: Final = f"http://{DEFAULT_CONTROL}"
# Where a UDP socket is "connected" to learn which local address the system routes out of;
# connecting a UDP socket sends nothing. TEST-NET addresses (RFC 5737, RFC 3849).
_PROBE: Final = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}
_NO_ADDRS_NOTE: Final = (
    "this node has no address a friend can dial (spec.listen.p2p binds none, or the P2P "
    "side is not up yet): their node cannot reach yours, so add theirs with an address "
    "(`gate peers add NAME ID --addr ...`) and it will dial them"
)


def pairing_methods(
    *,
    node: NodeHandle,
    identity: Identity,
    pending: PendingPeers,
    listen_addrs: Callable[[], Sequence[str]],
    add_peer: Method,
) -> dict[str, Method]:
    """The pairing methods. ``listen_addrs`` gives the P2P addresses the host listens on
    now (wildcards are resolved here); ``add_peer`` is the ``peers.add`` method, which
    accept and approve call to change the spec."""
    own_peer_id = identity.node_id.peer_id

    def check_addr(addr: str) -> None:
        parse_multiaddr(addr)

    async def peers_invite(params: dict[str, Any]) -> Any:
        name = node.status()["name"]
        addrs = dialable_addrs(listen_addrs(), peer_id=own_peer_id)
        invite = make_invite(
            identity=identity,
            name=name,
            addrs=addrs,
            ttl=float(params.get("ttl", DEFAULT_TTL)),
            now=time.time(),
        )
        result: dict[str, Any] = {
            "invite": invite.text,
            "link": invite_link(_LINK_BASE, invite),
            "expiresAt": invite.expires_at_rfc3339,
            "peerId": invite.peer_id,
            "name": invite.name,
            "addrs": list(invite.addrs),
        }
        if not invite.addrs:
            result["note"] = _NO_ADDRS_NOTE
        return result

    async def peers_accept(params: dict[str, Any]) -> Any:
        invite = parse_invite(
            params["invite"], time.time(), own_peer_id=own_peer_id, check_addr=check_addr
        )
        name = params.get("name") or invite.name
        _refuse_known(node, peer_id=invite.peer_id, name=name, named_by="invite")
        entry = _add_params(params, name=name, peer_id=invite.peer_id, addrs=invite.addrs)
        result = await add_peer(entry)
        # A friend who accepted ours first has dialed in already: now known, not pending.
        await pending.remove(invite.peer_id)
        return {**result, "peer": _peer(name, invite)}

    async def peers_pending(params: dict[str, Any]) -> Any:
        known = _declared_ids(node)
        listed = []
        for request in await pending.list():
            if request.peer_id in known:
                # Added to the spec another way (peers.add, an edit): no longer pending.
                await pending.remove(request.peer_id)
                continue
            listed.append(request.to_dict())
        return listed

    async def peers_approve(params: dict[str, Any]) -> Any:
        peer_id = _peer_id(params["peerId"])
        request = await pending.get(peer_id)
        if request is None:
            raise InvalidParams(
                f"no pending request from {peer_id}: see peers.pending (requests expire "
                "after 7 days; an ignored one is not listed)"
            )
        name = params.get("name") or request.name
        if not name or not _valid_name(name):
            said = f"it calls itself {request.name!r}, which " if request.name else "it "
            raise InvalidParams(
                f"give the peer a name: {said}does not name itself as a peer name may be "
                "(lowercase letters, digits and '-', at most 63)"
            )
        _refuse_known(node, peer_id=peer_id, name=name, named_by="request")
        result = await add_peer(_add_params(params, name=name, peer_id=peer_id, addrs=()))
        await pending.remove(peer_id)
        return {**result, "peer": {"name": name, "peerId": peer_id, "addrs": []}}

    async def peers_ignore(params: dict[str, Any]) -> Any:
        peer_id = _peer_id(params["peerId"])
        if not await pending.ignore(peer_id):
            raise InvalidParams(f"no pending request from {peer_id}: see peers.pending")
        return {"ignored": True, "peerId": peer_id}

    return {
        "peers.invite": peers_invite,
        "peers.accept": peers_accept,
        "peers.pending": peers_pending,
        "peers.approve": peers_approve,
        "peers.ignore": peers_ignore,
    }


def dialable_addrs(addrs: Iterable[str], *, peer_id: str) -> list[str]:
    """What of ``addrs`` a friend could dial: a wildcard bind (0.0.0.0, ::) becomes the
    address this host routes out of, unusable text is dropped, and no address is listed
    twice. At most MAX_ADDRS. Loopback stays: two nodes on one machine pair over it."""
    out: list[str] = []
    for text in addrs:
        try:
            parts = parse_multiaddr(text)
        except MultiaddrError:
            continue
        named = p2p_id(parts)
        if named is not None and named != peer_id:
            continue
        parts = [(p, v) for p, v in parts if p != "p2p"]
        for i, (proto, value) in enumerate(parts):
            if proto in ("ip4", "ip6") and value is not None:
                if ipaddress.ip_address(value).is_unspecified:
                    outbound = _outbound_address(proto)
                    if outbound is None:
                        parts = []
                        break
                    parts[i] = (proto, outbound)
        if not parts:
            continue
        addr = format_multiaddr(parts)
        if addr not in out:
            out.append(addr)
    return out[:MAX_ADDRS]


def _outbound_address(proto: str) -> str | None:
    family = socket.AF_INET if proto == "ip4" else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((_PROBE[family], 9))
            host: str = s.getsockname()[0]
    except OSError:
        return None  # no route of that family: nothing a friend could dial
    return None if ipaddress.ip_address(host).is_unspecified else host


def _add_params(
    params: dict[str, Any], *, name: str, peer_id: str, addrs: Sequence[str]
) -> dict[str, Any]:
    """``peers.add``'s params for a pairing call's own."""
    trusted = bool(params.get("trusted"))
    if not trusted and ("models" in params or "rateLimit" in params):
        raise InvalidParams(
            "models and rateLimit narrow what a trusted peer may use: add trusted: true "
            "(--trusted), or leave them out"
        )
    entry: dict[str, Any] = {"name": name, "id": peer_id}
    if addrs:
        entry["addrs"] = list(addrs)
    if trusted:
        entry["trusted"] = True
    for key in ("models", "rateLimit", "expectedGeneration", "wait", "timeout"):
        if key in params:
            entry[key] = params[key]
    return entry


def _refuse_known(node: NodeHandle, *, peer_id: str, name: str, named_by: str) -> None:
    for peer in (node.spec_document().get("spec") or {}).get("peers") or []:
        if _normalised(peer.get("id")) == peer_id:
            raise GateError(
                f"peer {peer_id} is already in the spec, as {peer.get('name')!r}",
                hint="nothing to add; to change whether it may use this node, "
                f"`gate peers rm {peer.get('name')}` and add it again",
            )
        if peer.get("name") == name:
            raise GateError(
                f"a peer named {name!r} is already in the spec (id {peer.get('id')})",
                hint=f"give this one another name (--name NAME); the {named_by} suggested {name!r}",
            )


def _declared_ids(node: NodeHandle) -> set[str]:
    peers = (node.spec_document().get("spec") or {}).get("peers") or []
    return {pid for p in peers if (pid := _normalised(p.get("id"))) is not None}


def _normalised(text: object) -> str | None:
    if not isinstance(text, str):
        return None
    try:
        return normalise_peer_id(text)
    except ValueError:
        return None


def _peer_id(text: str) -> str:
    try:
        return normalise_peer_id(text)
    except ValueError as e:
        raise InvalidParams(f"peerId: {e}") from e


def _valid_name(name: str) -> bool:
    pattern: str = load_schema("Node")["$defs"]["name"]["pattern"]
    return re.fullmatch(pattern, name) is not None


def _peer(name: str, invite: Invite) -> dict[str, Any]:
    return {"name": name, "peerId": invite.peer_id, "addrs": list(invite.addrs)}
