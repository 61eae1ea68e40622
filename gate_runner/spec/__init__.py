"""The spec: YAML in, migrated and validated, out as frozen typed objects (and back to YAML).

Everything outside this package sees NodeSpec / RelaySpec, never a raw dict of the spec.
"""

from __future__ import annotations

__all__ = (
    "AcmeSpec",
    "AllowRule",
    "CloudflareSpec",
    "DebugSpec",
    "DiscoverySpec",
    "DnsSpec",
    "EndpointsSpec",
    "EnvOverride",
    "FleetMember",
    "HostPort",
    "IdentitySpec",
    "LimitsSpec",
    "ListenSpec",
    "LoadedSpec",
    "NodeSpec",
    "PeerSpec",
    "ProviderSpec",
    "ProvidersSpec",
    "PublicEndpointSpec",
    "RateLimit",
    "RegistrySpec",
    "RelayListenSpec",
    "RelaySpec",
    "RetrySpec",
    "Rfc2136Spec",
    "RoutingSpec",
    "TimerSpec",
    "TrustSpec",
    "TsigSpec",
    "atomic_write",
    "canonical_yaml",
    "format_duration",
    "load_spec",
    "load_spec_file",
    "migrate_text",
    "parse_duration",
    "render_update",
    "spec_digest",
)

from gate_runner.spec.durations import format_duration, parse_duration
from gate_runner.spec.envoverride import EnvOverride
from gate_runner.spec.load import (
    LoadedSpec,
    load_spec,
    load_spec_file,
    migrate_text,
    spec_digest,
)
from gate_runner.spec.model import (
    AcmeSpec,
    AllowRule,
    CloudflareSpec,
    DebugSpec,
    DiscoverySpec,
    DnsSpec,
    EndpointsSpec,
    FleetMember,
    HostPort,
    IdentitySpec,
    LimitsSpec,
    ListenSpec,
    NodeSpec,
    PeerSpec,
    ProviderSpec,
    ProvidersSpec,
    PublicEndpointSpec,
    RateLimit,
    RegistrySpec,
    RelayListenSpec,
    RelaySpec,
    RetrySpec,
    Rfc2136Spec,
    RoutingSpec,
    TimerSpec,
    TrustSpec,
    TsigSpec,
)
from gate_runner.spec.write import atomic_write, canonical_yaml, render_update
