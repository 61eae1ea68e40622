"""Validation of a spec document: the JSON Schema of its kind, then the checks a schema cannot
express (ids, durations, duplicates, port clashes); every issue located by path and line.
"""

from __future__ import annotations

__all__ = (
    "KINDS",
    "Locator",
    "check_schema",
    "check_semantics",
    "document_kind",
    "load_schema",
    "validate_document",
)

import copy
import difflib
import functools
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any, Final

from jsonschema import Draft202012Validator, ValidationError

from gate_runner.errors import SpecError, SpecIssue
from gate_runner.identity import normalise_peer_id
from gate_runner.spec.durations import DURATION_HINT, SIZE_HINT, parse_duration, parse_size
from gate_runner.spec.model import (
    DEFAULT_API,
    DEFAULT_CONTROL,
    DEFAULT_P2P,
    DEFAULT_RELAY_CONTROL,
    DEFAULT_RELAY_P2P,
    DEFAULT_RELAY_TLS,
    HostPort,
)
from gate_runner.spec.yamlsafe import JsonPath, Mark, format_path, parse_path

KINDS: Final = ("Node", "Relay")
_SCHEMA_FILES: Final = {"Node": "node.v1.json", "Relay": "relay.v1.json"}

_PEER_ID_HINT: Final = "copy it from `gate id show` on that node"
_MULTIADDR_HINT: Final = "write it like /ip4/203.0.113.7/tcp/41145 or /dns4/host.example/tcp/41145"
_HOSTPORT_HINT: Final = "write it as 127.0.0.1:8145, or [::1]:8145 for IPv6"
_NAME_HINT: Final = (
    "use lowercase letters, digits and '-', at most 63 characters, not starting or ending with '-'"
)
# (message prefix, hint) for values that fail the pattern of a shared $defs entry.
_DEF_MESSAGES: Final = {
    "duration": ("not a duration", DURATION_HINT),
    "size": ("not a size", SIZE_HINT),
    "hostPort": ("not a host:port address", _HOSTPORT_HINT),
    "multiaddr": ("not a multiaddr", _MULTIADDR_HINT),
    "name": ("not a valid name", _NAME_HINT),
    "envVarName": (
        "not an environment variable name",
        "give the variable's name (e.g. OPENAI_API_KEY), not its value",
    ),
}
_TYPE_WORDS: Final = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})

# Multiaddr protocols this node knows: the ones that take a value and the ones that don't.
_VALUED_PROTOCOLS: Final = frozenset(
    {"ip4", "ip6", "dns", "dns4", "dns6", "dnsaddr", "tcp", "udp", "p2p", "ipfs", "sni", "certhash"}
)
_BARE_PROTOCOLS: Final = frozenset(
    {
        "quic",
        "quic-v1",
        "ws",
        "wss",
        "tls",
        "noise",
        "http",
        "https",
        "p2p-circuit",
        "webtransport",
        "webrtc",
        "webrtc-direct",
    }
)


@dataclass(frozen=True)
class Locator:
    """Turns a JSON path into a located SpecIssue.

    ``marks`` come from the parsed file; paths at or under an env override are attributed to the
    variable (``env GATE_LISTEN_API``); ``note`` is added to every hint (e.g. after a migration).
    """

    source: str
    marks: Mapping[JsonPath, Mark] = field(default_factory=dict)
    overrides: Mapping[JsonPath, str] = field(default_factory=dict)
    note: str | None = None

    def issue(self, path: JsonPath, message: str, hint: str | None = None) -> SpecIssue:
        for prefix, name in self.overrides.items():
            if path[: len(prefix)] == prefix:
                return SpecIssue(message, format_path(path), f"env {name}", hint=hint)
        line = column = None
        probe = path
        while True:
            mark = self.marks.get(probe)
            if mark is not None:
                line, column = mark
                break
            if not probe:
                break
            probe = probe[:-1]
        if self.note:
            hint = f"{hint}; {self.note}" if hint else self.note
        return SpecIssue(message, format_path(path), self.source, line, column, hint)

    def relocate(self, issue: SpecIssue) -> SpecIssue:
        """Locate an issue raised without a source or line (by a migration, say)."""
        try:
            path = parse_path(issue.path)
        except ValueError:
            return replace(issue, source=self.source)
        return self.issue(path, issue.message, issue.hint)


@functools.cache
def load_schema(kind: str) -> Mapping[str, Any]:
    """The JSON Schema of ``kind`` (shared and cached: do not mutate)."""
    text = resources.files("gate_runner.schema").joinpath(_SCHEMA_FILES[kind]).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def _validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(kind))


def document_kind(
    document: Mapping[str, Any], *, locator: Locator, expect_kind: str | None = None
) -> str:
    """The document's kind, checked against KINDS and ``expect_kind``."""
    kind = document.get("kind")
    if kind not in KINDS:
        message = "missing kind" if kind is None else f"unknown kind {kind!r}"
        guess = expect_kind or "Node"
        raise SpecError(
            locator.issue(
                ("kind",), f"{message} (expected one of {', '.join(KINDS)})", f"add `kind: {guess}`"
            )
        )
    if expect_kind is not None and kind != expect_kind:
        hint = "start a relay with `gate relay up -f`" if kind == "Relay" else None
        raise SpecError(
            locator.issue(
                ("kind",), f"this is a {kind} spec, but a {expect_kind} spec is needed", hint
            )
        )
    return str(kind)


def validate_document(
    document: Mapping[str, Any], *, kind: str, locator: Locator
) -> dict[str, Any]:
    """Check ``document`` fully; return a normalised copy (peer ids in 12D3KooW form).

    Raises SpecError with every schema issue, or, when the schema passes, every semantic issue.
    """
    issues = check_schema(document, kind=kind, locator=locator)
    if issues:
        raise SpecError(issues)
    normalised, issues = check_semantics(document, kind=kind, locator=locator)
    if issues:
        raise SpecError(issues)
    return normalised


def _sorted(issues: Iterable[SpecIssue]) -> list[SpecIssue]:
    unique = list(dict.fromkeys(issues))
    return sorted(
        unique, key=lambda i: (i.line is None, i.line or 0, i.column or 0, i.source, i.path)
    )


# --- schema -----------------------------------------------------------------------------------


def check_schema(document: Any, *, kind: str, locator: Locator) -> list[SpecIssue]:
    """Every JSON Schema violation in ``document``, in document order."""
    defs = load_schema(kind).get("$defs", {})
    def_names = {id(schema): name for name, schema in defs.items()}
    issues: list[SpecIssue] = []
    for error in _validator(kind).iter_errors(document):
        issues.extend(_describe(error, def_names, locator))
    return _sorted(issues)


def _describe(
    error: ValidationError, def_names: Mapping[int, str], locator: Locator
) -> Iterable[SpecIssue]:
    path: JsonPath = tuple(error.absolute_path)
    validator, expected, value = error.validator, error.validator_value, error.instance
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    def_name = def_names.get(id(schema))
    if validator == "additionalProperties" and isinstance(value, Mapping):
        allowed = list(schema.get("properties", {}))
        for key in value:
            if key not in allowed:
                yield locator.issue(
                    (*path, key), f"unknown key {key!r}", _unknown_key_hint(key, allowed)
                )
    elif validator == "required" and isinstance(value, Mapping):
        properties = schema.get("properties", {})
        for key in expected:
            if key not in value:
                description = str(properties.get(key, {}).get("description", ""))
                hint = f"add {key}" + (
                    f": {description[:1].lower()}{description[1:]}" if description else ""
                )
                yield locator.issue((*path, key), f"missing required key {key!r}", hint)
    elif validator == "type":
        if value is None:
            type_hint = "a key with nothing after it is null: give it a value or remove it"
        else:
            type_hint = _DEF_MESSAGES[def_name][1] if def_name in _DEF_MESSAGES else ""
        yield locator.issue(
            path, f"expected {_type_words(expected)}, got {_value_words(value)}", type_hint or None
        )
    elif validator == "enum":
        choices = [str(c) for c in expected]
        close = difflib.get_close_matches(str(value), choices, n=1)
        yield locator.issue(
            path,
            f"must be one of {', '.join(choices)} (got {value!r})",
            f"did you mean {close[0]!r}?" if close else None,
        )
    elif validator == "const":
        yield locator.issue(path, f"must be {expected!r} (got {value!r})")
    elif validator == "pattern":
        if def_name in _DEF_MESSAGES:
            prefix, hint = _DEF_MESSAGES[def_name]
            yield locator.issue(path, f"{prefix}: {value!r}", hint)
        else:
            yield locator.issue(
                path, f"{value!r} is not in the expected form", schema.get("description")
            )
    elif validator in ("minimum", "maximum"):
        bound = "at least" if validator == "minimum" else "at most"
        yield locator.issue(path, f"must be {bound} {expected} (got {value!r})")
    elif validator == "minItems":
        yield locator.issue(
            path, f"needs at least {expected} entr{'y' if expected == 1 else 'ies'}"
        )
    elif validator == "minLength":
        yield locator.issue(path, "must not be empty")
    elif validator == "uniqueItems":
        yield locator.issue(path, "lists the same entry twice", "remove the repeated entry")
    else:
        yield locator.issue(path, error.message)


def _unknown_key_hint(key: str, allowed: list[str]) -> str:
    by_lower = {a.lower(): a for a in allowed}
    close = difflib.get_close_matches(key.lower(), list(by_lower), n=1, cutoff=0.6)
    parts: list[str] = []
    if close:
        parts.append(f"did you mean {by_lower[close[0]]!r}?")
    secret_keys = [a for a in allowed if a.endswith("Env")]
    if secret_keys and any(w in key.lower() for w in ("secret", "token", "key", "password")):
        parts.append(
            "secrets never go in the spec: put the value in an environment variable "
            f"and name it in {' or '.join(secret_keys)}"
        )
    parts.append(
        f"allowed keys here: {', '.join(allowed)}" if allowed else "no keys are allowed here"
    )
    text = ""
    for part in parts[:-1]:
        text += part + (" " if part.endswith("?") else "; ")
    return text + parts[-1]


def _type_words(expected: Any) -> str:
    if isinstance(expected, list):
        return " or ".join(_TYPE_WORDS.get(str(t), str(t)) for t in expected)
    return _TYPE_WORDS.get(expected, str(expected))


def _value_words(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"  # YAML dates, sets and the like


# --- semantics --------------------------------------------------------------------------------


class _Checks:
    """Collects issues while the semantic checks walk a (copied, validated) document."""

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
            self.add(path, str(e), _HOSTPORT_HINT)
            return None

    def peer_id(self, value: str, path: JsonPath) -> str | None:
        try:
            return normalise_peer_id(value)
        except ValueError as e:
            self.add(path, str(e), _PEER_ID_HINT)
            return None

    def multiaddr(self, value: str, path: JsonPath) -> list[tuple[str, str | None]] | None:
        """(protocol, value) pairs of a multiaddr, /p2p/ ids normalised; None (and an issue) when
        invalid."""
        parts = value.split("/")[1:]
        out: list[tuple[str, str | None]] = []
        i = 0
        while i < len(parts):
            proto = parts[i]
            if proto in _BARE_PROTOCOLS:
                out.append((proto, None))
                i += 1
                continue
            if proto not in _VALUED_PROTOCOLS:
                self.add(
                    path,
                    f"not a multiaddr: unknown protocol {proto!r} in {value!r}",
                    _MULTIADDR_HINT,
                )
                return None
            if i + 1 >= len(parts) or not parts[i + 1]:
                self.add(
                    path, f"not a multiaddr: /{proto} needs a value in {value!r}", _MULTIADDR_HINT
                )
                return None
            arg = parts[i + 1]
            problem = _multiaddr_value_problem(proto, arg)
            if problem:
                self.add(path, f"not a multiaddr: {problem} in {value!r}", _MULTIADDR_HINT)
                return None
            if proto in ("p2p", "ipfs"):
                normalised = self.peer_id(arg, path)
                if normalised is None:
                    return None
                proto, arg = "p2p", normalised
            out.append((proto, arg))
            i += 2
        return out

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


def _multiaddr_value_problem(proto: str, arg: str) -> str | None:
    try:
        if proto == "ip4":
            ipaddress.IPv4Address(arg)
        elif proto == "ip6":
            ipaddress.IPv6Address(arg)
    except ValueError:
        return f"{arg!r} is not an {proto} address"
    if proto in ("tcp", "udp") and (not arg.isdigit() or int(arg) > 65535):
        return f"{arg!r} is not a port from 0 to 65535"
    return None


def _format_multiaddr(parts: list[tuple[str, str | None]]) -> str:
    return "".join(f"/{p}" if v is None else f"/{p}/{v}" for p, v in parts)


def _p2p_id(parts: list[tuple[str, str | None]]) -> str | None:
    return next((v for p, v in reversed(parts) if p == "p2p"), None)


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


def _check_listeners(checks: _Checks, listeners: list[_Listener]) -> None:
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


def _p2p_listeners(
    checks: _Checks, addrs: list[str], path: JsonPath, *, explicit: bool
) -> tuple[list[str], list[_Listener]]:
    normalised: list[str] = []
    listeners: list[_Listener] = []
    for i, addr in enumerate(addrs):
        parts = checks.multiaddr(addr, (*path, i))
        if parts is None:
            normalised.append(addr)
            continue
        normalised.append(_format_multiaddr(parts))
        values = dict(parts)
        host = values.get("ip4") or values.get("ip6") or values.get("dns4") or values.get("dns")
        port = values.get("tcp")
        if host and port is not None:
            listeners.append(_Listener((*path, i), _listener_host(host), int(port), addr, explicit))
    return normalised, listeners


def _check_listen(
    checks: _Checks,
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
    p2p_path: JsonPath = (*path, "p2p")
    if "p2p" in listen:
        listen["p2p"], p2p = _p2p_listeners(checks, listen["p2p"], p2p_path, explicit=True)
    else:
        _, p2p = _p2p_listeners(checks, list(default_p2p), p2p_path, explicit=False)
    listeners.extend(p2p)
    _check_listeners(checks, listeners)
    return addresses


def check_semantics(
    document: Mapping[str, Any], *, kind: str, locator: Locator
) -> tuple[dict[str, Any], list[SpecIssue]]:
    """The checks beyond the schema, on a schema-valid document.

    Returns a normalised deep copy (peer ids in 12D3KooW form, also inside /p2p/ multiaddrs)
    and the issues found.
    """
    normalised: dict[str, Any] = copy.deepcopy(dict(document))
    checks = _Checks(locator)
    spec = normalised.get("spec")
    if isinstance(spec, dict):
        if kind == "Node":
            _check_node(checks, spec)
        else:
            _check_relay(checks, spec)
    return normalised, _sorted(checks.issues)


def _check_node(checks: _Checks, spec: dict[str, Any]) -> None:
    root: JsonPath = ("spec",)
    listen = spec.get("listen", {})
    addresses = _check_listen(
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
            addrs[j] = _format_multiaddr(parts)
            named = _p2p_id(parts)
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
        parts = checks.multiaddr(relay, (*public_path, "relays", i))
        if parts is None:
            continue
        if _p2p_id(parts) is None:
            checks.add(
                (*public_path, "relays", i),
                "a relay address must end in /p2p/<relay peer id>",
                "append the relay's peer id, e.g. /p2p/12D3KooW...",
            )
        relays[i] = _format_multiaddr(parts)
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


def _check_provider(checks: _Checks, provider: Mapping[str, Any], path: JsonPath) -> None:
    kind = provider["kind"]
    needs, refuses = ("model", ("url", "apiKeyEnv")) if kind == "llamacpp" else ("url", ("model",))
    if needs not in provider:
        what = "the GGUF file's path" if needs == "model" else "the engine's base URL"
        checks.add((*path, needs), f"{kind} providers need {needs} ({what})")
    for key in refuses:
        if key in provider:
            checks.add((*path, key), f"{kind} providers take no {key}", f"remove {key}")
    checks.duration(provider.get("timeout"), (*path, "timeout"), positive=True)


def _check_relay(checks: _Checks, spec: dict[str, Any]) -> None:
    root: JsonPath = ("spec",)
    _check_listen(
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
        parts = checks.multiaddr(member["addr"], (*fleet_path, i, "addr"))
        if parts is None:
            continue
        if _p2p_id(parts) is None:
            checks.add(
                (*fleet_path, i, "addr"),
                "a relay address must end in /p2p/<relay peer id>",
                "append the relay's peer id, e.g. /p2p/12D3KooW...",
            )
        member["addr"] = _format_multiaddr(parts)
