"""The multiaddr parser on its own: what it accepts, how it writes addresses back, and the first
wrong part it reports with the fix."""

from __future__ import annotations

import pytest

from gate_runner.identity import NodeId
from gate_runner.spec.multiaddr import (
    MULTIADDR_HINT,
    PEER_ID_HINT,
    MultiaddrError,
    format_multiaddr,
    p2p_id,
    parse_multiaddr,
    tcp_endpoint,
)


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("/ip4/203.0.113.7/tcp/41145", ("203.0.113.7", 41145)),
        ("/ip6/::1/tcp/0", ("::1", 0)),
        ("/dns4/host.example/tcp/443/tls/ws", ("host.example", 443)),
        ("/ip4/0.0.0.0/udp/41145/quic-v1", None),
        ("/dns6/host.example/tcp/443", None),  # dns6 is not checked for port clashes
    ],
)
def test_parses_and_writes_back_unchanged(text: str, endpoint: tuple[str, int] | None) -> None:
    parts = parse_multiaddr(text)
    assert format_multiaddr(parts) == text
    assert tcp_endpoint(parts) == endpoint
    assert p2p_id(parts) is None


@pytest.mark.parametrize("form", ["peer_id", "hex", "label"])
def test_a_peer_id_in_any_form_becomes_p2p_and_12d3koow(form: str, bob: NodeId) -> None:
    parts = parse_multiaddr(f"/ip4/203.0.113.7/tcp/41145/ipfs/{getattr(bob, form)}")
    assert format_multiaddr(parts) == f"/ip4/203.0.113.7/tcp/41145/p2p/{bob.peer_id}"
    assert p2p_id(parts) == bob.peer_id


def test_the_last_p2p_names_the_peer(bob: NodeId, carol: NodeId) -> None:
    circuit = f"/dns4/r.example/tcp/41146/p2p/{carol.peer_id}/p2p-circuit/p2p/{bob.peer_id}"
    assert p2p_id(parse_multiaddr(circuit)) == bob.peer_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "/ip4/1.2.3/tcp/1",
            "not a multiaddr: '1.2.3' is not an ip4 address in '/ip4/1.2.3/tcp/1'",
        ),
        ("/ip4/1.2.3.4/tcp/70000", "not a multiaddr: '70000' is not a port from 0 to 65535"),
        ("/ip4/1.2.3.4/sctp/1", "not a multiaddr: unknown protocol 'sctp'"),
        ("/ip4/1.2.3.4/tcp", "not a multiaddr: /tcp needs a value"),
        ("ip4/1.2.3.4", "not a multiaddr: unknown protocol '1.2.3.4'"),
    ],
)
def test_the_first_wrong_part_is_reported_with_the_form(text: str, message: str) -> None:
    with pytest.raises(MultiaddrError) as caught:
        parse_multiaddr(text)
    assert str(caught.value).startswith(message)
    assert caught.value.hint == MULTIADDR_HINT


def test_a_bad_peer_id_points_at_gate_id_show() -> None:
    with pytest.raises(MultiaddrError) as caught:
        parse_multiaddr("/ip4/1.2.3.4/tcp/1/p2p/not-a-peer/sctp/1")
    assert "peer id" in str(caught.value)
    assert caught.value.hint == PEER_ID_HINT
