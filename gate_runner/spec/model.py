"""The typed, frozen form of a validated spec (NodeSpec, RelaySpec) and how a document becomes one.

Defaults live here, applied while building, so the stored document stays as the user wrote it.
"""

from __future__ import annotations

__all__ = (
    "DEFAULT_API",
    "DEFAULT_CONTROL",
    "DEFAULT_DATA_DIR",
    "DEFAULT_KEY_FILE",
    "DEFAULT_P2P",
    "DEFAULT_RELAY_CONTROL",
    "DEFAULT_RELAY_DATA_DIR",
    "DEFAULT_RELAY_P2P",
    "DEFAULT_RELAY_TLS",
    "HOSTPORT_HINT",
    "PROVIDER_TIMEOUTS",
    "AcmeSpec",
    "AllowRule",
    "BreakerSpec",
    "ApiLimitsSpec",
    "CloudflareSpec",
    "DebugSpec",
    "ControlSpec",
    "DiscoverySpec",
    "DiscoveryTarget",
    "DnsSpec",
    "EndpointsSpec",
    "FleetMember",
    "HostPort",
    "IdentitySpec",
    "LimitsSpec",
    "ListenSpec",
    "NodeSpec",
    "PeerSpec",
    "ProviderSpec",
    "ProvidersSpec",
    "PublicEndpointSpec",
    "RateLimit",
    "RegistrySpec",
    "RelayListenSpec",
    "RelaySpec",
    "RequestLogSpec",
    "RetrySpec",
    "Rfc2136Spec",
    "RoutingSpec",
    "TimerSpec",
    "TrustSpec",
    "TsigSpec",
    "build_node_spec",
    "build_relay_spec",
    "default_timeout",
)

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from gate_runner.spec.durations import parse_duration, parse_size

DEFAULT_API: Final = "127.0.0.1:31145"
DEFAULT_CONTROL: Final = "127.0.0.1:8145"
DEFAULT_P2P: Final = ("/ip4/0.0.0.0/tcp/41145",)
DEFAULT_DATA_DIR: Final = "~/.local/share/gate"
DEFAULT_KEY_FILE: Final = "identity.pem"
# A relay usually shares its host with nothing else, but tests and small setups run a node
# beside it, so its P2P and control defaults differ from the node's.
DEFAULT_RELAY_TLS: Final = "0.0.0.0:443"
DEFAULT_RELAY_P2P: Final = ("/ip4/0.0.0.0/tcp/41146",)
DEFAULT_RELAY_CONTROL: Final = "127.0.0.1:8146"
DEFAULT_RELAY_DATA_DIR: Final = "~/.local/share/gate-relay"
HOSTPORT_HINT: Final = "write it as 127.0.0.1:8145, or [::1]:8145 for IPv6"


@dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP address as the spec writes it: ``127.0.0.1:8145`` or ``[::1]:8145``."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, default_port: int | None = None) -> HostPort:
        """Parse ``host:port`` (IPv6 in brackets); raises ValueError saying what is wrong."""
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"not a host:port address: {text!r}")
            port_text = rest[1:] if rest else None
        elif text.count(":") > 1:
            raise ValueError(f"an IPv6 address needs brackets: [{text.rpartition(':')[0]}]:port")
        else:
            host, sep, port_text_ = text.partition(":")
            port_text = port_text_ if sep else None
        if not host:
            raise ValueError(f"no host in {text!r}")
        if port_text is None:
            if default_port is None:
                raise ValueError(f"no port in {text!r}")
            return cls(host, default_port)
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ValueError(f"the port in {text!r} is not a number from 0 to 65535")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Reachable only from this machine."""
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class IdentitySpec:
    key_file: str = DEFAULT_KEY_FILE


@dataclass(frozen=True, slots=True)
class ListenSpec:
    p2p: tuple[str, ...] = DEFAULT_P2P
    api: HostPort = HostPort("127.0.0.1", 31145)
    control: HostPort = HostPort("127.0.0.1", 8145)
    api_keys: tuple[str, ...] = ()  # names of env vars, each holding one accepted key
    insecure: bool = False
    api_hosts: tuple[str, ...] = ()  # more Host names for the API, lowercase, no trailing dot
    cors_origins: tuple[str, ...] = ()  # lowercase, no trailing slash; "*" for any


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """spec.control: how the control plane may be reached beyond loopback."""

    tls_cert: Path | None = None  # both set or neither
    tls_key: Path | None = None
    insecure: bool = False
    origins: tuple[str, ...] = ()

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


# How long a provider may stay silent (before the head, or between two reads), by kind.
# Ollama sends no byte, not even the head, while it loads a model (minutes for a large one
# from disk) nor, for a non-streamed answer, until the whole answer is generated: 60 s
# would cut long answers off with a 504. OpenAI-compatible servers stream or answer
# sooner, and a shorter wait finds a stuck one sooner.
PROVIDER_TIMEOUTS: Final[Mapping[str, float]] = {"ollama": 600.0, "openai": 60.0, "llamacpp": 60.0}


def default_timeout(kind: str) -> float:
    """The silence a provider of ``kind`` is allowed when its spec sets no ``timeout``."""
    return PROVIDER_TIMEOUTS.get(kind, 60.0)


@dataclass(frozen=True, slots=True)
class DiscoveryTarget:
    name: str
    kind: str  # "ollama" | "openai"
    url: str
    timeout: float  # seconds of silence allowed; the builder fills in the kind's default


DEFAULT_DISCOVERY_TARGETS = (
    DiscoveryTarget("ollama", "ollama", "http://127.0.0.1:11434", default_timeout("ollama")),
    DiscoveryTarget("lmstudio", "openai", "http://127.0.0.1:1234/v1", default_timeout("openai")),
)


@dataclass(frozen=True, slots=True)
class DiscoverySpec:
    enabled: bool = True
    interval: float = 30.0
    targets: tuple[DiscoveryTarget, ...] = DEFAULT_DISCOVERY_TARGETS


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    kind: str  # "ollama" | "openai" | "llamacpp"
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout: float = 60.0
    # The engine's models offered and routed to, as shell-style globs; None: all of them.
    models: tuple[str, ...] | None = None
    # Put before each model's name: "team/" lists llama3 as team/llama3, and a request for
    # team/llama3 reaches the engine as llama3.
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class ProvidersSpec:
    discovery: DiscoverySpec = DiscoverySpec()
    static: tuple[ProviderSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class PeerSpec:
    name: str
    id: str  # always the 12D3KooW... form
    addrs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests_per_minute: int | None = None
    concurrent: int | None = None


@dataclass(frozen=True, slots=True)
class AllowRule:
    peer: str
    models: tuple[str, ...] = ("*",)
    rate_limit: RateLimit | None = None


@dataclass(frozen=True, slots=True)
class TrustSpec:
    mode: str = "friends"  # "private" | "friends" | "public"
    allow: tuple[AllowRule, ...] = ()


@dataclass(frozen=True, slots=True)
class RetrySpec:
    max_attempts: int = 3
    initial_backoff: float = 0.2
    max_backoff: float = 5.0


@dataclass(frozen=True, slots=True)
class BreakerSpec:
    failure_threshold: int = 5
    cooldown: float = 5.0


@dataclass(frozen=True, slots=True)
class RoutingSpec:
    strategy: str = "prefer-local"  # "local-only" | "prefer-local" | "load-balance"
    retry: RetrySpec = RetrySpec()
    circuit_breaker: BreakerSpec = BreakerSpec()


@dataclass(frozen=True, slots=True)
class AcmeSpec:
    email: str | None = None
    directory: str | None = None  # None: Let's Encrypt production


@dataclass(frozen=True, slots=True)
class PublicEndpointSpec:
    enabled: bool = False
    relays: tuple[str, ...] = ()
    acme: AcmeSpec = AcmeSpec()


@dataclass(frozen=True, slots=True)
class EndpointsSpec:
    public: PublicEndpointSpec = PublicEndpointSpec()


@dataclass(frozen=True, slots=True)
class ApiLimitsSpec:
    body_timeout: float = 30.0
    max_request_body: int = 8 << 20
    max_response_body: int = 64 << 20


@dataclass(frozen=True, slots=True)
class RequestLogSpec:
    retention: int = 100_000
    max_age: float = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """Test-only: the trivial ``timer`` component the reconciler tests use."""

    name: str
    interval: float


@dataclass(frozen=True, slots=True)
class DebugSpec:
    timers: tuple[TimerSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node's desired state (kind Node), with every default filled in."""

    api_version: str
    name: str
    data_dir: Path
    identity: IdentitySpec = IdentitySpec()
    listen: ListenSpec = ListenSpec()
    control: ControlSpec = ControlSpec()
    providers: ProvidersSpec = ProvidersSpec()
    peers: tuple[PeerSpec, ...] = ()
    trust: TrustSpec = TrustSpec()
    routing: RoutingSpec = RoutingSpec()
    endpoints: EndpointsSpec = EndpointsSpec()
    limits: ApiLimitsSpec = ApiLimitsSpec()
    request_log: RequestLogSpec = RequestLogSpec()
    debug: DebugSpec = DebugSpec()

    @property
    def key_path(self) -> Path:
        return _under(self.data_dir, self.identity.key_file)

    def peer(self, name: str) -> PeerSpec | None:
        return next((p for p in self.peers if p.name == name), None)


@dataclass(frozen=True, slots=True)
class RelayListenSpec:
    tls: HostPort = HostPort("0.0.0.0", 443)
    p2p: tuple[str, ...] = DEFAULT_RELAY_P2P
    control: HostPort = HostPort("127.0.0.1", 8146)


@dataclass(frozen=True, slots=True)
class TsigSpec:
    """A TSIG key; the secret itself is read at run time from ``secret_env`` or ``secret_file``."""

    name: str
    algorithm: str = "hmac-sha256"
    secret_env: str | None = None
    secret_file: Path | None = None  # absolute (resolved against dataDir)


@dataclass(frozen=True, slots=True)
class Rfc2136Spec:
    server: HostPort
    zone: str
    tsig: TsigSpec


@dataclass(frozen=True, slots=True)
class CloudflareSpec:
    zone: str
    token_env: str


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """Exactly one of ``rfc2136`` and ``cloudflare`` is set."""

    rfc2136: Rfc2136Spec | None = None
    cloudflare: CloudflareSpec | None = None
    ttl: int = 60
    propagation_timeout: float = 30.0

    @property
    def provider(self) -> str:
        return "rfc2136" if self.rfc2136 is not None else "cloudflare"


@dataclass(frozen=True, slots=True)
class RegistrySpec:
    max_nodes: int = 10_000
    ttl: float = 600.0


@dataclass(frozen=True, slots=True)
class LimitsSpec:
    max_connections_per_node: int = 64
    handshake_timeout: float = 10.0
    max_client_hello_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class FleetMember:
    name: str
    addr: str  # multiaddr ending in /p2p/<12D3KooW...>


@dataclass(frozen=True, slots=True)
class RelaySpec:
    """A relay's desired state (kind Relay), with every default filled in."""

    api_version: str
    name: str
    base_domain: str
    data_dir: Path
    public_addresses: tuple[str, ...]
    dns: DnsSpec
    identity: IdentitySpec = IdentitySpec()
    listen: RelayListenSpec = RelayListenSpec()
    registry: RegistrySpec = RegistrySpec()
    limits: LimitsSpec = LimitsSpec()
    fleet: tuple[FleetMember, ...] = ()

    @property
    def key_path(self) -> Path:
        return _under(self.data_dir, self.identity.key_file)


def _under(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def _data_dir(text: str, base_dir: Path | None) -> Path:
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    base = base_dir if base_dir is not None else Path.cwd()
    return Path(os.path.normpath(base.absolute() / path))


def _section(parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, Mapping) else {}


def _items(parent: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    value = parent.get(key)
    return value if isinstance(value, list) else []


def _strings(value: Any, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else default


def _timeout(value: Any, kind: str) -> float:
    return default_timeout(kind) if value is None else parse_duration(value)


def _discovery(discovery: Mapping[str, Any]) -> DiscoverySpec:
    # A target's own timeout wins over discovery.timeout, which wins over the kind's default.
    shared = discovery.get("timeout")
    targets = discovery.get("targets")
    if targets is None:
        targets = [
            {"name": t.name, "kind": t.kind, "url": t.url} for t in DEFAULT_DISCOVERY_TARGETS
        ]
    return DiscoverySpec(
        enabled=bool(discovery.get("enabled", True)),
        interval=parse_duration(discovery.get("interval", "30s")),
        targets=tuple(
            DiscoveryTarget(
                name=t["name"],
                kind=t["kind"],
                url=t["url"],
                timeout=_timeout(t.get("timeout", shared), t["kind"]),
            )
            for t in targets
        ),
    )


def build_node_spec(document: Mapping[str, Any], *, base_dir: Path | None = None) -> NodeSpec:
    """Build a NodeSpec from a validated Node document; ``base_dir`` anchors a relative dataDir."""
    spec = _section(document, "spec")
    listen = _section(spec, "listen")
    providers = _section(spec, "providers")
    discovery = _section(providers, "discovery")
    trust = _section(spec, "trust")
    routing = _section(spec, "routing")
    retry = _section(routing, "retry")
    breaker = _section(routing, "circuitBreaker")
    public = _section(_section(spec, "endpoints"), "public")
    acme = _section(public, "acme")
    control = _section(spec, "control")
    tls = _section(control, "tls")
    data_dir = _data_dir(spec.get("dataDir", DEFAULT_DATA_DIR), base_dir)
    return NodeSpec(
        api_version=str(document["apiVersion"]),
        name=str(document["metadata"]["name"]),
        data_dir=data_dir,
        identity=IdentitySpec(key_file=_section(spec, "identity").get("keyFile", DEFAULT_KEY_FILE)),
        listen=ListenSpec(
            p2p=_strings(listen.get("p2p"), DEFAULT_P2P),
            api=HostPort.parse(listen.get("api", DEFAULT_API)),
            control=HostPort.parse(listen.get("control", DEFAULT_CONTROL)),
            api_keys=_strings(listen.get("apiKeys")),
            insecure=bool(listen.get("insecure", False)),
            api_hosts=tuple(h.lower().rstrip(".") for h in _strings(listen.get("apiHosts"))),
            cors_origins=tuple(
                o.rstrip("/").lower() for o in _strings(_section(listen, "cors").get("origins"))
            ),
        ),
        control=ControlSpec(
            tls_cert=_under(data_dir, tls["certFile"]) if tls else None,
            tls_key=_under(data_dir, tls["keyFile"]) if tls else None,
            insecure=bool(control.get("insecure", False)),
            origins=tuple(o.rstrip("/").lower() for o in _strings(control.get("origins"))),
        ),
        providers=ProvidersSpec(
            discovery=_discovery(discovery),
            static=tuple(
                ProviderSpec(
                    name=p["name"],
                    kind=p["kind"],
                    url=p.get("url"),
                    model=os.path.expanduser(p["model"]) if "model" in p else None,
                    api_key_env=p.get("apiKeyEnv"),
                    timeout=_timeout(p.get("timeout"), p["kind"]),
                    models=_strings(p["models"]) if "models" in p else None,
                    prefix=p.get("prefix", ""),
                )
                for p in _items(providers, "static")
            ),
        ),
        peers=tuple(
            PeerSpec(name=p["name"], id=p["id"], addrs=_strings(p.get("addrs")))
            for p in _items(spec, "peers")
        ),
        trust=TrustSpec(
            mode=trust.get("mode", "friends"),
            allow=tuple(
                AllowRule(
                    peer=rule["peer"],
                    models=_strings(rule.get("models"), ("*",)),
                    rate_limit=_rate_limit(rule.get("rateLimit")),
                )
                for rule in _items(trust, "allow")
            ),
        ),
        routing=RoutingSpec(
            strategy=routing.get("strategy", "prefer-local"),
            retry=RetrySpec(
                max_attempts=int(retry.get("maxAttempts", 3)),
                initial_backoff=parse_duration(retry.get("initialBackoff", "200ms")),
                max_backoff=parse_duration(retry.get("maxBackoff", "5s")),
            ),
            circuit_breaker=BreakerSpec(
                failure_threshold=int(breaker.get("failureThreshold", 5)),
                cooldown=parse_duration(breaker.get("cooldown", "5s")),
            ),
        ),
        endpoints=EndpointsSpec(
            public=PublicEndpointSpec(
                enabled=bool(public.get("enabled", False)),
                relays=_strings(public.get("relays")),
                acme=AcmeSpec(email=acme.get("email"), directory=acme.get("directory")),
            )
        ),
        limits=ApiLimitsSpec(
            body_timeout=parse_duration(_section(spec, "limits").get("bodyTimeout", "30s")),
            max_request_body=parse_size(_section(spec, "limits").get("maxRequestBody", "8MiB")),
            max_response_body=parse_size(_section(spec, "limits").get("maxResponseBody", "64MiB")),
        ),
        request_log=RequestLogSpec(
            retention=int(_section(spec, "requestLog").get("retention", 100_000)),
            max_age=parse_duration(_section(spec, "requestLog").get("maxAge", "168h")),
        ),
        debug=DebugSpec(
            timers=tuple(
                TimerSpec(name=t["name"], interval=parse_duration(t["interval"]))
                for t in _items(_section(spec, "debug"), "timers")
            )
        ),
    )


def _rate_limit(value: Any) -> RateLimit | None:
    if not isinstance(value, Mapping):
        return None
    rpm, concurrent = value.get("requestsPerMinute"), value.get("concurrent")
    return RateLimit(
        requests_per_minute=int(rpm) if rpm is not None else None,
        concurrent=int(concurrent) if concurrent is not None else None,
    )


def build_relay_spec(document: Mapping[str, Any], *, base_dir: Path | None = None) -> RelaySpec:
    """Build a RelaySpec from a validated Relay document (``base_dir`` as for build_node_spec)."""
    spec = _section(document, "spec")
    base_domain = str(spec["baseDomain"]).lower().rstrip(".")
    data_dir = _data_dir(spec.get("dataDir", DEFAULT_RELAY_DATA_DIR), base_dir)
    listen = _section(spec, "listen")
    dns = _section(spec, "dns")
    rfc = dns.get("rfc2136")
    cloudflare = dns.get("cloudflare")
    registry = _section(spec, "registry")
    limits = _section(spec, "limits")
    rfc2136: Rfc2136Spec | None = None
    if isinstance(rfc, Mapping):
        tsig = rfc["tsig"]
        secret_file = tsig.get("secretFile")
        rfc2136 = Rfc2136Spec(
            server=HostPort.parse(rfc["server"], default_port=53),
            zone=str(rfc.get("zone", base_domain)).lower().rstrip("."),
            tsig=TsigSpec(
                name=tsig["name"],
                algorithm=tsig.get("algorithm", "hmac-sha256"),
                secret_env=tsig.get("secretEnv"),
                secret_file=_under(data_dir, secret_file) if secret_file else None,
            ),
        )
    return RelaySpec(
        api_version=str(document["apiVersion"]),
        name=str(document["metadata"]["name"]),
        base_domain=base_domain,
        data_dir=data_dir,
        public_addresses=_strings(spec.get("publicAddresses")),
        dns=DnsSpec(
            rfc2136=rfc2136,
            cloudflare=CloudflareSpec(
                zone=str(cloudflare.get("zone", base_domain)).lower().rstrip("."),
                token_env=cloudflare["tokenEnv"],
            )
            if isinstance(cloudflare, Mapping)
            else None,
            ttl=int(dns.get("ttl", 60)),
            propagation_timeout=parse_duration(dns.get("propagationTimeout", "30s")),
        ),
        identity=IdentitySpec(key_file=_section(spec, "identity").get("keyFile", DEFAULT_KEY_FILE)),
        listen=RelayListenSpec(
            tls=HostPort.parse(listen.get("tls", DEFAULT_RELAY_TLS)),
            p2p=_strings(listen.get("p2p"), DEFAULT_RELAY_P2P),
            control=HostPort.parse(listen.get("control", DEFAULT_RELAY_CONTROL)),
        ),
        registry=RegistrySpec(
            max_nodes=int(registry.get("maxNodes", 10_000)),
            ttl=parse_duration(registry.get("ttl", "10m")),
        ),
        limits=LimitsSpec(
            max_connections_per_node=int(limits.get("maxConnectionsPerNode", 64)),
            handshake_timeout=parse_duration(limits.get("handshakeTimeout", "10s")),
            max_client_hello_bytes=parse_size(limits.get("maxClientHelloBytes", "64KiB")),
        ),
        fleet=tuple(FleetMember(name=f["name"], addr=f["addr"]) for f in _items(spec, "fleet")),
    )
