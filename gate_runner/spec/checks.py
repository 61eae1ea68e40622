"""The issue collector the semantic rules share: ``Checks`` gathers located issues and checks one
value of each form (duration, host:port, peer id, multiaddr, unique names) with its hint.
"""

from __future__ import annotations

__all__ = ("Checks",)

from collections.abc import Callable
from typing import Any

from gate_runner.errors import SpecIssue
from gate_runner.identity import normalise_peer_id
from gate_runner.spec.durations import DURATION_HINT, parse_duration
from gate_runner.spec.locator import Locator
from gate_runner.spec.model import HOSTPORT_HINT, HostPort
from gate_runner.spec.multiaddr import (
    PEER_ID_HINT,
    MultiaddrError,
    MultiaddrParts,
    format_multiaddr,
    p2p_id,
    parse_multiaddr,
)
from gate_runner.spec.yamlsafe import JsonPath, format_path


class Checks:
    """Collects issues while the semantic checks walk a (copied, validated) document.

    Each value check records an issue and returns None when the value is wrong.
    """

    def __init__(self, locator: Locator) -> None:
        self.locator = locator
        self.issues: list[SpecIssue] = []

    def add(self, path: JsonPath, message: str, hint: str | None = None) -> None:
        self.issues.append(self.locator.issue(path, message, hint))

    def duration(self, value: Any, path: JsonPath, *, positive: bool) -> float | None:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            self.add(path, str(e), DURATION_HINT)
            return None
        if positive and seconds <= 0:
            self.add(path, f"must be longer than 0s (got {value!r})", DURATION_HINT)
        return seconds

    def host_port(
        self, value: Any, path: JsonPath, default_port: int | None = None
    ) -> HostPort | None:
        if value is None:
            return None
        try:
            return HostPort.parse(value, default_port=default_port)
        except ValueError as e:
            self.add(path, str(e), HOSTPORT_HINT)
            return None

    def peer_id(self, value: str, path: JsonPath) -> str | None:
        try:
            return normalise_peer_id(value)
        except ValueError as e:
            self.add(path, str(e), PEER_ID_HINT)
            return None

    def multiaddr(self, value: str, path: JsonPath) -> MultiaddrParts | None:
        """(protocol, value) pairs of a multiaddr, /p2p/ ids normalised."""
        try:
            return parse_multiaddr(value)
        except MultiaddrError as e:
            self.add(path, str(e), e.hint)
            return None

    def relay_address(self, value: str, path: JsonPath) -> str | None:
        """A relay's multiaddr, normalised; it must name the relay by its /p2p/ peer id."""
        parts = self.multiaddr(value, path)
        if parts is None:
            return None
        if p2p_id(parts) is None:
            self.add(
                path,
                "a relay address must end in /p2p/<relay peer id>",
                "append the relay's peer id, e.g. /p2p/12D3KooW...",
            )
        return format_multiaddr(parts)

    def unique(
        self, items: list[Any], key: Callable[[Any], Any], path: JsonPath, field: str, what: str
    ) -> None:
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            value = key(item)
            if value is None:
                continue
            if value in seen:
                first = format_path((*path, seen[value]))
                self.add(
                    (*path, i, field),
                    f"duplicate {what} {value!r} (also used by {first})",
                    f"each {what} must be unique",
                )
            else:
                seen[value] = i
