"""The multiaddrs a spec may hold: the protocols this node knows, parsing (with /p2p/ peer ids
normalised to 12D3KooW form) and writing them back.
"""

from __future__ import annotations

__all__ = (
    "MULTIADDR_HINT",
    "PEER_ID_HINT",
    "MultiaddrError",
    "MultiaddrParts",
    "format_multiaddr",
    "p2p_id",
    "parse_multiaddr",
    "tcp_endpoint",
)

import ipaddress
from typing import Final, TypeAlias

from gate_runner.identity import normalise_peer_id

MULTIADDR_HINT: Final = "write it like /ip4/203.0.113.7/tcp/41145 or /dns4/host.example/tcp/41145"
PEER_ID_HINT: Final = "copy it from `gate id show` on that node"

# Multiaddr protocols this node knows: the ones that take a value and the ones that don't.
_VALUED_PROTOCOLS: Final = frozenset(
    {"ip4", "ip6", "dns", "dns4", "dns6", "dnsaddr", "tcp", "udp", "p2p", "ipfs", "sni", "certhash"}
)
_BARE_PROTOCOLS: Final = frozenset(
    {
        "quic",
        "quic-v1",
        "ws",
        "wss",
        "tls",
        "noise",
        "http",
        "https",
        "p2p-circuit",
        "webtransport",
        "webrtc",
        "webrtc-direct",
    }
)

MultiaddrParts: TypeAlias = list[tuple[str, str | None]]
"""(protocol, value) pairs in order; the value is None for a protocol that takes none."""


class MultiaddrError(ValueError):
    """Raised by ``parse_multiaddr`` when the text is not a multiaddr this node can use;
    ``hint`` says how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def parse_multiaddr(text: str) -> MultiaddrParts:
    """The (protocol, value) pairs of ``text``, /ipfs/ written as /p2p/ and peer ids normalised.

    Raises MultiaddrError at the first part that is wrong.
    """
    parts = text.split("/")[1:]
    out: MultiaddrParts = []
    i = 0
    while i < len(parts):
        proto = parts[i]
        if proto in _BARE_PROTOCOLS:
            out.append((proto, None))
            i += 1
            continue
        if proto not in _VALUED_PROTOCOLS:
            raise MultiaddrError(
                f"not a multiaddr: unknown protocol {proto!r} in {text!r}", MULTIADDR_HINT
            )
        if i + 1 >= len(parts) or not parts[i + 1]:
            raise MultiaddrError(
                f"not a multiaddr: /{proto} needs a value in {text!r}", MULTIADDR_HINT
            )
        arg = parts[i + 1]
        problem = _value_problem(proto, arg)
        if problem:
            raise MultiaddrError(f"not a multiaddr: {problem} in {text!r}", MULTIADDR_HINT)
        if proto in ("p2p", "ipfs"):
            try:
                proto, arg = "p2p", normalise_peer_id(arg)
            except ValueError as e:
                raise MultiaddrError(str(e), PEER_ID_HINT) from e
        out.append((proto, arg))
        i += 2
    return out


def _value_problem(proto: str, arg: str) -> str | None:
    try:
        if proto == "ip4":
            ipaddress.IPv4Address(arg)
        elif proto == "ip6":
            ipaddress.IPv6Address(arg)
    except ValueError:
        return f"{arg!r} is not an {proto} address"
    if proto in ("tcp", "udp") and (not arg.isdigit() or int(arg) > 65535):
        return f"{arg!r} is not a port from 0 to 65535"
    return None


def format_multiaddr(parts: MultiaddrParts) -> str:
    """The text form of parsed ``parts``."""
    return "".join(f"/{p}" if v is None else f"/{p}/{v}" for p, v in parts)


def p2p_id(parts: MultiaddrParts) -> str | None:
    """The peer id the address ends in (its last /p2p/), if any."""
    return next((v for p, v in reversed(parts) if p == "p2p"), None)


def tcp_endpoint(parts: MultiaddrParts) -> tuple[str, int] | None:
    """The (host, port) a listen address binds on TCP, or None when it names no host or port."""
    values = dict(parts)
    host = values.get("ip4") or values.get("ip6") or values.get("dns4") or values.get("dns")
    port = values.get("tcp")
    if host and port is not None:
        return host, int(port)
    return None
