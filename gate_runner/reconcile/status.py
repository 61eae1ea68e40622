"""Conditions and per-component status, as reported in `gate status` and node.status."""

from __future__ import annotations

__all__ = ("ComponentStatus", "Condition")

from dataclasses import dataclass, field, replace

from gate_runner.state.db import now_rfc3339


@dataclass(frozen=True, slots=True)
class Condition:
    type: str  # Ready | Degraded
    status: bool
    reason: str
    message: str = ""
    last_transition_time: str = field(default_factory=now_rfc3339)

    def to_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }


@dataclass(slots=True)
class ComponentStatus:
    """Mutable status of one running component instance, owned by the supervisor."""

    kind: str
    key: str
    observed_generation: int = 0
    restarts: int = 0
    conditions: dict[str, Condition] = field(default_factory=dict)

    def set(self, type_: str, status: bool, reason: str, message: str = "") -> bool:
        """Set a condition; the transition time moves only when the status flips.

        Returns True when anything visible changed.
        """
        old = self.conditions.get(type_)
        if old is not None and old.status == status:
            if (old.reason, old.message) == (reason, message):
                return False
            self.conditions[type_] = replace(old, reason=reason, message=message)
            return True
        self.conditions[type_] = Condition(type_, status, reason, message)
        return True

    @property
    def ready(self) -> bool:
        cond = self.conditions.get("Ready")
        return cond is not None and cond.status

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "key": self.key,
            "observedGeneration": self.observed_generation,
            "restarts": self.restarts,
            "conditions": [c.to_dict() for c in self.conditions.values()],
        }
