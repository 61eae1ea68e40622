"""Upgrade of the flat ``gate.hellas.ai/v1alpha1`` config to a ``gate.hellas.ai/v1`` Node document.

v1alpha1 had no kind, metadata or spec; every key is optional except apiVersion::

    apiVersion: gate.hellas.ai/v1alpha1
    node:
      name: alice                        # -> metadata.name
      dataDir: ~/.gate                   # -> spec.dataDir
      keyFile: identity.pem              # -> spec.identity.keyFile
    network:
      listen: ["/ip4/0.0.0.0/tcp/41145"] # -> spec.listen.p2p
      peers:                             # -> spec.peers (same fields)
        - {name: bob, id: 12D3KooW..., addrs: ["/ip4/203.0.113.7/tcp/41145"]}
      relays: ["/dns4/relay.example/tcp/41146/p2p/12D3KooW..."]
                                         # -> spec.endpoints.public.relays (first)
    autodiscover: true                   # -> spec.providers.discovery.enabled
    discoveryInterval: 30                # seconds or a duration -> ...discovery.interval
    providers:                           # -> spec.providers.static; type -> kind,
      - {name: ollama, type: ollama, url: http://127.0.0.1:11434}    # timeout in seconds -> "60s"
      - {name: gguf, type: llamacpp, model: /models/qwen.gguf}       # (also apiKeyEnv)
    security:
      trust: friends                     # -> spec.trust.mode
      allowedPeers:                      # -> spec.trust.allow
        - bob                            # a bare name -> {peer: bob}
        - {peer: carol, models: ["llama3*"], requestsPerMinute: 60, concurrent: 4}
                                  # -> {peer, models, rateLimit: {requestsPerMinute, concurrent}}
    web:
      api: 127.0.0.1:31145               # -> spec.listen.api
      control: 127.0.0.1:8145            # -> spec.listen.control
      publicEndpoint:                    # -> spec.endpoints.public
        enabled: true
        relays: [...]                    # appended after network.relays, repeats dropped
        acmeEmail: me@example.com        # -> spec.endpoints.public.acme.email

Keys outside this shape are errors (located in the v1alpha1 text), never dropped. Values are moved,
not checked: the v1 schema checks them after the upgrade. Pure: no I/O, the input is not mutated.
"""

from __future__ import annotations

__all__ = ("FROM_VERSION", "TO_VERSION", "upgrade")

import copy
import difflib
from collections.abc import Mapping
from typing import Any, Final

from gate_runner.errors import SpecError, SpecIssue

FROM_VERSION: Final = "gate.hellas.ai/v1alpha1"
TO_VERSION: Final = "gate.hellas.ai/v1"

_TOP_KEYS: Final = (
    "apiVersion",
    "node",
    "network",
    "autodiscover",
    "discoveryInterval",
    "providers",
    "security",
    "web",
)
_NODE_KEYS: Final = ("name", "dataDir", "keyFile")
_NETWORK_KEYS: Final = ("listen", "peers", "relays")
_PROVIDER_KEYS: Final = ("name", "type", "url", "model", "apiKeyEnv", "timeout")
_SECURITY_KEYS: Final = ("trust", "allowedPeers")
_ALLOWED_PEER_KEYS: Final = ("peer", "models", "requestsPerMinute", "concurrent")
_WEB_KEYS: Final = ("api", "control", "publicEndpoint")
_PUBLIC_KEYS: Final = ("enabled", "relays", "acmeEmail")


def _path(parts: tuple[str | int, ...]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class _Reader:
    """Reads the v1alpha1 shape, collecting every problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[SpecIssue] = []

    def mapping(
        self, value: Any, path: tuple[str | int, ...], allowed: tuple[str, ...]
    ) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.issues.append(SpecIssue("expected a mapping", _path(path)))
            return {}
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.issues.append(
                    SpecIssue(
                        f"unknown key {key!r} in a {FROM_VERSION} config",
                        _path((*path, str(key))),
                        hint=f"{hint}allowed keys here: {', '.join(allowed)}",
                    )
                )
        return value

    def sequence(self, value: Any, path: tuple[str | int, ...]) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.issues.append(SpecIssue("expected a list", _path(path)))
            return []
        return value


def _seconds(value: Any) -> Any:
    """v1alpha1 wrote times as seconds; v1 wants a duration string. Strings pass through."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if float(value).is_integer():
        return f"{int(value)}s"
    return f"{round(value * 1000)}ms"


def _put(target: dict[str, Any], key: str, source: Mapping[str, Any], source_key: str) -> None:
    if source_key in source:
        target[key] = copy.deepcopy(source[source_key])


def upgrade(document: Mapping[str, Any]) -> dict[str, Any]:
    """Return the v1 form of a v1alpha1 ``document``; raises SpecError on keys it cannot place."""
    read = _Reader()
    top = read.mapping(document, (), _TOP_KEYS)
    node = read.mapping(top.get("node"), ("node",), _NODE_KEYS)
    network = read.mapping(top.get("network"), ("network",), _NETWORK_KEYS)
    security = read.mapping(top.get("security"), ("security",), _SECURITY_KEYS)
    web = read.mapping(top.get("web"), ("web",), _WEB_KEYS)
    public_in = read.mapping(web.get("publicEndpoint"), ("web", "publicEndpoint"), _PUBLIC_KEYS)

    spec: dict[str, Any] = {}
    _put(spec, "dataDir", node, "dataDir")
    if "keyFile" in node:
        spec["identity"] = {"keyFile": node["keyFile"]}

    listen: dict[str, Any] = {}
    _put(listen, "p2p", network, "listen")
    _put(listen, "api", web, "api")
    _put(listen, "control", web, "control")
    if listen:
        spec["listen"] = listen

    providers: dict[str, Any] = {}
    discovery: dict[str, Any] = {}
    _put(discovery, "enabled", top, "autodiscover")
    if "discoveryInterval" in top:
        discovery["interval"] = _seconds(top["discoveryInterval"])
    if discovery:
        providers["discovery"] = discovery
    if "providers" in top:
        static: list[dict[str, Any]] = []
        for i, item in enumerate(read.sequence(top["providers"], ("providers",))):
            old = read.mapping(item, ("providers", i), _PROVIDER_KEYS)
            new: dict[str, Any] = {}
            _put(new, "name", old, "name")
            _put(new, "kind", old, "type")
            for key in ("url", "model", "apiKeyEnv"):
                _put(new, key, old, key)
            if "timeout" in old:
                new["timeout"] = _seconds(old["timeout"])
            static.append(new)
        providers["static"] = static
    if providers:
        spec["providers"] = providers

    if "peers" in network:
        spec["peers"] = copy.deepcopy(read.sequence(network["peers"], ("network", "peers")))

    trust: dict[str, Any] = {}
    _put(trust, "mode", security, "trust")
    if "allowedPeers" in security:
        allow: list[Any] = []
        for i, item in enumerate(
            read.sequence(security["allowedPeers"], ("security", "allowedPeers"))
        ):
            if isinstance(item, str):
                allow.append({"peer": item})
                continue
            old = read.mapping(item, ("security", "allowedPeers", i), _ALLOWED_PEER_KEYS)
            rule: dict[str, Any] = {}
            _put(rule, "peer", old, "peer")
            _put(rule, "models", old, "models")
            limit: dict[str, Any] = {}
            _put(limit, "requestsPerMinute", old, "requestsPerMinute")
            _put(limit, "concurrent", old, "concurrent")
            if limit:
                rule["rateLimit"] = limit
            allow.append(rule)
        trust["allow"] = allow
    if trust:
        spec["trust"] = trust

    public: dict[str, Any] = {}
    _put(public, "enabled", public_in, "enabled")
    relays: list[Any] = []
    for path, source in (
        (("network", "relays"), network),
        (("web", "publicEndpoint", "relays"), public_in),
    ):
        for relay in read.sequence(source.get("relays"), path):
            if relay not in relays:
                relays.append(relay)
    if relays:
        public["relays"] = relays
    if "acmeEmail" in public_in:
        public["acme"] = {"email": public_in["acmeEmail"]}
    if public:
        spec["endpoints"] = {"public": public}

    if read.issues:
        raise SpecError(read.issues)
    metadata: dict[str, Any] = {}
    _put(metadata, "name", node, "name")
    return {"apiVersion": TO_VERSION, "kind": "Node", "metadata": metadata, "spec": spec}
