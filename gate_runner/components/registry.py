"""The list of component kinds a node runs, in start order."""

from __future__ import annotations

__all__ = ("build_components",)

from gate_runner.components.api import ApiComponent
from gate_runner.components.base import Component, Services
from gate_runner.components.control import ControlComponent
from gate_runner.components.discovery import DiscoveryComponent
from gate_runner.components.p2p import P2PComponent
from gate_runner.components.providers import ProviderComponent
from gate_runner.components.state import StateComponent
from gate_runner.components.timer import TimerComponent


def build_components(services: Services) -> list[Component]:
    return [
        StateComponent(services),
        ControlComponent(services),
        ProviderComponent(services),
        DiscoveryComponent(services),
        P2PComponent(services),
        ApiComponent(services),
        TimerComponent(),
    ]
