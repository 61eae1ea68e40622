"""The planner: a pure function from desired and actual component slices to ordered actions."""

from __future__ import annotations

__all__ = ("Key", "Plan", "Start", "Stop", "Update", "plan")

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

Key = tuple[str, str]  # (component kind, instance name)


@dataclass(frozen=True, slots=True)
class Stop:
    key: Key


@dataclass(frozen=True, slots=True)
class Update:
    """The slice changed: the supervisor tries the component's in-place update, else restarts."""

    key: Key
    old: Hashable
    new: Hashable


@dataclass(frozen=True, slots=True)
class Start:
    key: Key
    slice: Hashable


@dataclass(frozen=True, slots=True)
class Plan:
    stops: tuple[Stop, ...] = ()
    updates: tuple[Update, ...] = ()
    starts: tuple[Start, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.stops or self.updates or self.starts)

    def actions(self) -> tuple[Stop | Update | Start, ...]:
        """In execution order: every stop before any update or start."""
        return (*self.stops, *self.updates, *self.starts)


def plan(*, desired: Mapping[Key, Hashable], actual: Mapping[Key, Hashable]) -> Plan:
    """Compare per key. Equal slices mean no action, so editing one part of the spec
    never touches the components whose slice is unchanged. Output is sorted by key so
    that the same inputs always give the same plan."""
    stops = tuple(Stop(k) for k in sorted(actual.keys() - desired.keys()))
    updates = tuple(
        Update(k, actual[k], desired[k])
        for k in sorted(actual.keys() & desired.keys())
        if actual[k] != desired[k]
    )
    starts = tuple(Start(k, desired[k]) for k in sorted(desired.keys() - actual.keys()))
    return Plan(stops, updates, starts)
