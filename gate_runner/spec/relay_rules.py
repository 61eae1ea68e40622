"""The semantic rules of kind Relay, beyond its schema: listeners, published addresses, the DNS
provider and zone, limits and the fleet's addresses.
"""

from __future__ import annotations

__all__ = ("check_relay",)

import ipaddress
from typing import Any

from gate_runner.spec.checks import Checks
from gate_runner.spec.durations import SIZE_HINT, parse_size
from gate_runner.spec.listeners import check_listen
from gate_runner.spec.model import DEFAULT_RELAY_CONTROL, DEFAULT_RELAY_P2P, DEFAULT_RELAY_TLS
from gate_runner.spec.yamlsafe import JsonPath


def check_relay(checks: Checks, spec: dict[str, Any]) -> None:
    """Check a schema-valid relay ``spec``, normalising its multiaddrs in place."""
    root: JsonPath = ("spec",)
    check_listen(
        checks,
        spec.get("listen", {}),
        {"tls": DEFAULT_RELAY_TLS, "control": DEFAULT_RELAY_CONTROL},
        DEFAULT_RELAY_P2P,
    )

    for i, address in enumerate(spec.get("publicAddresses", [])):
        path: JsonPath = (*root, "publicAddresses", i)
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            checks.add(
                path,
                f"not an IP address: {address!r}",
                "list the IPv4/IPv6 addresses clients reach",
            )
            continue
        if ip.is_unspecified or ip.is_multicast:
            checks.add(
                path,
                f"{address} cannot be published as an A/AAAA record",
                "list a routable address",
            )

    base_domain = str(spec.get("baseDomain", "")).lower().rstrip(".")
    dns = spec.get("dns", {})
    dns_path: JsonPath = (*root, "dns")
    providers = [p for p in ("rfc2136", "cloudflare") if p in dns]
    if len(providers) != 1:
        checks.add(
            dns_path,
            "choose exactly one DNS provider: rfc2136 or cloudflare"
            + (f" (found {' and '.join(providers)})" if providers else ""),
        )
    rfc = dns.get("rfc2136")
    if rfc is not None:
        checks.host_port(rfc["server"], (*dns_path, "rfc2136", "server"), default_port=53)
        tsig = rfc["tsig"]
        secrets = [k for k in ("secretEnv", "secretFile") if k in tsig]
        if len(secrets) != 1:
            checks.add(
                (*dns_path, "rfc2136", "tsig"),
                "give exactly one of secretEnv and secretFile",
                "the secret never goes in the spec: name an env var or a file holding it",
            )
    for provider in providers:
        zone = str(dns[provider].get("zone", base_domain)).lower().rstrip(".")
        if base_domain != zone and not base_domain.endswith("." + zone):
            checks.add(
                (*dns_path, provider, "zone"),
                f"zone {zone!r} does not contain baseDomain {base_domain!r}",
                "use the zone baseDomain lives in",
            )
    checks.duration(dns.get("propagationTimeout"), (*dns_path, "propagationTimeout"), positive=True)
    checks.duration(spec.get("registry", {}).get("ttl"), (*root, "registry", "ttl"), positive=True)

    limits = spec.get("limits", {})
    checks.duration(
        limits.get("handshakeTimeout"), (*root, "limits", "handshakeTimeout"), positive=True
    )
    if "maxClientHelloBytes" in limits:
        path = (*root, "limits", "maxClientHelloBytes")
        try:
            size = parse_size(limits["maxClientHelloBytes"])
        except ValueError as e:
            checks.add(path, str(e), SIZE_HINT)
        else:
            # A ClientHello with SNI and the usual extensions is 200-600 bytes.
            if size < 1024:
                checks.add(
                    path, f"{size} bytes is too small for a ClientHello", "use at least 1KiB"
                )

    fleet = spec.get("fleet", [])
    fleet_path: JsonPath = (*root, "fleet")
    checks.unique(fleet, lambda f: f["name"], fleet_path, "name", "relay name")
    for i, member in enumerate(fleet):
        addr = checks.relay_address(member["addr"], (*fleet_path, i, "addr"))
        if addr is not None:
            member["addr"] = addr
