"""The semantic rules of kind Node, beyond its schema: listeners and who may reach them, durations,
providers, peers and their addresses, trust rules, retry backoff, the public endpoint and timers.
"""

from __future__ import annotations

__all__ = ("check_node",)

import difflib
from collections.abc import Mapping
from typing import Any

from gate_runner.spec.checks import Checks
from gate_runner.spec.listeners import check_listen
from gate_runner.spec.model import DEFAULT_API, DEFAULT_CONTROL, DEFAULT_P2P
from gate_runner.spec.multiaddr import format_multiaddr, p2p_id
from gate_runner.spec.yamlsafe import JsonPath


def check_node(checks: Checks, spec: dict[str, Any]) -> None:
    """Check a schema-valid node ``spec``, normalising its peer ids and multiaddrs in place."""
    root: JsonPath = ("spec",)
    listen = spec.get("listen", {})
    addresses = check_listen(
        checks, listen, {"api": DEFAULT_API, "control": DEFAULT_CONTROL}, DEFAULT_P2P
    )
    api = addresses.get("api")
    if api is not None and not api.loopback:
        if not listen.get("apiKeys") and not listen.get("insecure", False):
            checks.add(
                (*root, "listen", "api"),
                f"the API on {api} would answer anyone on the network without a key",
                "bind it to 127.0.0.1, list env vars holding keys in listen.apiKeys, "
                "or set listen.insecure: true",
            )
    if "*" in listen.get("cors", {}).get("origins", []) and not listen.get("apiKeys"):
        checks.add(
            (*root, "listen", "cors", "origins"),
            "\"*\" lets every web page you visit use this node's engines and your friends'",
            "list the web apps' origins instead, or set listen.apiKeys so that a page needs a key",
        )
    control = addresses.get("control")
    control_security = spec.get("control", {})
    if control is not None and not control.loopback:
        if "tls" not in control_security and not control_security.get("insecure", False):
            checks.add(
                (*root, "listen", "control"),
                f"the control plane on {control} would send its token and every call in "
                "clear text across the network",
                "bind it to 127.0.0.1, give it a certificate in control.tls, "
                "or set control.insecure: true",
            )

    providers = spec.get("providers", {})
    discovery = providers.get("discovery", {})
    checks.duration(
        discovery.get("interval"), (*root, "providers", "discovery", "interval"), positive=True
    )
    checks.duration(
        discovery.get("timeout"), (*root, "providers", "discovery", "timeout"), positive=True
    )
    for i, target in enumerate(discovery.get("targets", [])):
        target_path: JsonPath = (*root, "providers", "discovery", "targets", i, "timeout")
        checks.duration(target.get("timeout"), target_path, positive=True)
    checks.duration(
        spec.get("limits", {}).get("bodyTimeout"), (*root, "limits", "bodyTimeout"), positive=True
    )
    static = providers.get("static", [])
    static_path: JsonPath = (*root, "providers", "static")
    checks.unique(static, lambda p: p["name"], static_path, "name", "provider name")
    for i, provider in enumerate(static):
        _check_provider(checks, provider, (*static_path, i))

    peers = spec.get("peers", [])
    peers_path: JsonPath = (*root, "peers")
    checks.unique(peers, lambda p: p["name"], peers_path, "name", "peer name")
    peer_ids: list[str | None] = []
    for i, peer in enumerate(peers):
        peer_id = checks.peer_id(peer["id"], (*peers_path, i, "id"))
        peer_ids.append(peer_id)
        if peer_id is not None:
            peer["id"] = peer_id
        addrs = peer.get("addrs", [])
        for j, addr in enumerate(addrs):
            parts = checks.multiaddr(addr, (*peers_path, i, "addrs", j))
            if parts is None:
                continue
            addrs[j] = format_multiaddr(parts)
            named = p2p_id(parts)
            if named is not None and peer_id is not None and named != peer_id:
                checks.add(
                    (*peers_path, i, "addrs", j),
                    f"this address ends in another peer's id ({named}), not {peer['name']}'s",
                    "drop the /p2p/... part or fix the peer's id",
                )
    checks.unique(peer_ids, lambda peer_id: peer_id, peers_path, "id", "peer id")

    trust = spec.get("trust", {})
    allow = trust.get("allow", [])
    allow_path: JsonPath = (*root, "trust", "allow")
    declared = [p["name"] for p in peers]
    for i, rule in enumerate(allow):
        if rule["peer"] not in declared:
            close = difflib.get_close_matches(rule["peer"], declared, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "declare the peer under spec.peers"
            checks.add(
                (*allow_path, i, "peer"), f"no peer named {rule['peer']!r} in spec.peers", hint
            )
    checks.unique(allow, lambda r: r["peer"], allow_path, "peer", "allow rule for peer")

    retry = spec.get("routing", {}).get("retry", {})
    retry_path: JsonPath = (*root, "routing", "retry")
    initial = checks.duration(
        retry.get("initialBackoff", "200ms"), (*retry_path, "initialBackoff"), positive=False
    )
    maximum = checks.duration(
        retry.get("maxBackoff", "5s"), (*retry_path, "maxBackoff"), positive=False
    )
    if initial is not None and maximum is not None and initial > maximum:
        where = "maxBackoff" if "maxBackoff" in retry else "initialBackoff"
        checks.add(
            (*retry_path, where),
            f"initialBackoff ({retry.get('initialBackoff', '200ms')}) is longer than "
            f"maxBackoff ({retry.get('maxBackoff', '5s')})",
            "make initialBackoff no longer than maxBackoff",
        )

    public = spec.get("endpoints", {}).get("public", {})
    public_path: JsonPath = (*root, "endpoints", "public")
    relays = public.get("relays", [])
    for i, relay in enumerate(relays):
        addr = checks.relay_address(relay, (*public_path, "relays", i))
        if addr is not None:
            relays[i] = addr
    if public.get("enabled", False) and not relays:
        checks.add(
            (*public_path, "relays"),
            "the public endpoint is enabled but no relay is listed",
            "add a relay multiaddr or set enabled: false",
        )

    timers = spec.get("debug", {}).get("timers", [])
    timers_path: JsonPath = (*root, "debug", "timers")
    checks.unique(timers, lambda t: t["name"], timers_path, "name", "timer name")
    for i, timer in enumerate(timers):
        checks.duration(timer["interval"], (*timers_path, i, "interval"), positive=True)


def _check_provider(checks: Checks, provider: Mapping[str, Any], path: JsonPath) -> None:
    kind = provider["kind"]
    needs, refuses = ("model", ("url", "apiKeyEnv")) if kind == "llamacpp" else ("url", ("model",))
    if needs not in provider:
        what = "the GGUF file's path" if needs == "model" else "the engine's base URL"
        checks.add((*path, needs), f"{kind} providers need {needs} ({what})")
    for key in refuses:
        if key in provider:
            checks.add((*path, key), f"{kind} providers take no {key}", f"remove {key}")
    checks.duration(provider.get("timeout"), (*path, "timeout"), positive=True)
