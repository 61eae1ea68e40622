"""Listener clashes: the spec's listen section (host:port listeners and p2p multiaddrs, defaults
included) parsed, and two listeners on one port refused.
"""

from __future__ import annotations

__all__ = ("check_listen",)

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from gate_runner.spec.checks import Checks
from gate_runner.spec.model import HostPort
from gate_runner.spec.multiaddr import format_multiaddr, tcp_endpoint
from gate_runner.spec.yamlsafe import JsonPath, format_path

_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True)
class _Listener:
    path: JsonPath
    host: str
    port: int
    text: str
    explicit: bool  # written in the document, not a default

    def clashes_with(self, other: _Listener) -> bool:
        if self.port == 0 or self.port != other.port:
            return False
        return self.host == other.host or self.host in _WILDCARDS or other.host in _WILDCARDS


def _listener_host(host: str) -> str:
    host = host.lower()
    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def check_listen(
    checks: Checks,
    listen: dict[str, Any],
    defaults: Mapping[str, str],
    default_p2p: tuple[str, ...],
) -> dict[str, HostPort]:
    """Parse the host:port listeners and the p2p multiaddrs (normalised in place), and refuse
    two on one port, defaults included."""
    path: JsonPath = ("spec", "listen")
    addresses: dict[str, HostPort] = {}
    listeners: list[_Listener] = []
    for key, default in defaults.items():
        text = listen.get(key, default)
        address = checks.host_port(text, (*path, key))
        if address is not None:
            addresses[key] = address
            listeners.append(
                _Listener(
                    (*path, key), _listener_host(address.host), address.port, text, key in listen
                )
            )
    explicit = "p2p" in listen
    p2p, p2p_listeners = _p2p_listeners(
        checks, listen.get("p2p", list(default_p2p)), (*path, "p2p"), explicit=explicit
    )
    if explicit:
        listen["p2p"] = p2p
    listeners.extend(p2p_listeners)
    _check_clashes(checks, listeners)
    return addresses


def _p2p_listeners(
    checks: Checks, addrs: list[str], path: JsonPath, *, explicit: bool
) -> tuple[list[str], list[_Listener]]:
    normalised: list[str] = []
    listeners: list[_Listener] = []
    for i, addr in enumerate(addrs):
        parts = checks.multiaddr(addr, (*path, i))
        if parts is None:
            normalised.append(addr)
            continue
        normalised.append(format_multiaddr(parts))
        endpoint = tcp_endpoint(parts)
        if endpoint is not None:
            host, port = endpoint
            listeners.append(_Listener((*path, i), _listener_host(host), port, addr, explicit))
    return normalised, listeners


def _check_clashes(checks: Checks, listeners: list[_Listener]) -> None:
    for i, listener in enumerate(listeners):
        for earlier in listeners[:i]:
            if listener.clashes_with(earlier):
                # Report on a line the user wrote: a default has no line of its own.
                here, other = (listener, earlier) if listener.explicit else (earlier, listener)
                default = "" if other.explicit else f" (by default {other.text})"
                checks.add(
                    here.path,
                    f"port {here.port} is already used by {format_path(other.path)}{default}",
                    "give each listener its own port",
                )
                break
