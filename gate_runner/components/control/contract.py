"""The control plane's published contract: every method's params and result as JSON Schema,
the error codes' data (the codes are in wire/jsonrpc.py), the events, and the OpenRPC
document built from them."""

from __future__ import annotations

__all__ = (
    "CONTRACTS",
    "ERRORS",
    "EVENT_SCHEMAS",
    "PAIRING_CONTRACTS",
    "MethodContract",
    "contracts_for",
    "openrpc_document",
)

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gate_runner import __version__
from gate_runner.events import EVENT_TYPES

# -- error codes: JSON-RPC's own, then ours in the server range, each with its data in ERRORS.
# They live in wire/jsonrpc.py, which the CLI imports without loading this package.
from gate_runner.wire.jsonrpc import (
    CONFLICT,
    GATE_ERROR,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NEEDS_WEBSOCKET,
    PARSE_ERROR,
    SPEC_INVALID,
)

# -- building blocks ----------------------------------------------------------------------

_STR: dict[str, Any] = {"type": "string"}
_STR_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
_INT: dict[str, Any] = {"type": "integer"}
_NUM: dict[str, Any] = {"type": "number"}
_NUM_OR_NULL: dict[str, Any] = {"type": ["number", "null"]}
_INT_OR_NULL: dict[str, Any] = {"type": ["integer", "null"]}
_BOOL: dict[str, Any] = {"type": "boolean"}
_LEVEL: dict[str, Any] = {"enum": ["debug", "info", "warning", "error", "critical"]}


def _obj(required: Mapping[str, Any], optional: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An object schema; params objects are closed (a misspelt param is an error)."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": sorted(required),
    }


def _params(
    required: Mapping[str, Any] | None = None, optional: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    return {**_obj(required or {}, optional), "additionalProperties": False}


def _list(items: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": dict(items)}


_CONDITION = _obj(
    {
        "type": _STR,
        "status": _BOOL,
        "reason": _STR,
        "message": _STR,
        "lastTransitionTime": _STR,
    }
)
_COMPONENT = _obj(
    {
        "kind": _STR,
        "key": _STR,
        "observedGeneration": _INT,
        "restarts": _INT,
        "conditions": _list(_CONDITION),
    }
)
_NODE_ID = _obj({"peerId": _STR, "hex": _STR, "label": _STR})
_STATUS = _obj(
    {
        "name": _STR,
        "version": _STR,
        "identity": _NODE_ID,
        "spec": _obj(
            {
                "generation": _INT,
                "observedGeneration": _INT,
                "source": _STR_OR_NULL,
                "lastError": _STR_OR_NULL,
                "lastAppliedAt": _STR_OR_NULL,
            },
            {"migratedFrom": _STR_OR_NULL, "overrides": _list(_obj({"name": _STR, "path": _STR}))},
        ),
        "components": _list(_COMPONENT),
        "peers": _list(_obj({"name": _STR, "peerId": _STR, "state": _STR})),
        "time": _STR,
    }
)
_APPLY_RESULT = _obj(
    {"generation": _INT, "changed": _BOOL, "dryRun": _BOOL, "diff": _STR},
    {
        "converged": _BOOL,
        "observedGeneration": _INT,
        "components": _list(_COMPONENT),
        "rolledBackTo": _INT,
    },
)
# How long a mutating call waits for the components to converge before it answers.
_WAIT = {
    "wait": {**_BOOL, "description": "wait for convergence (default true)"},
    "timeout": {**_NUM, "minimum": 0, "maximum": 300, "description": "seconds (default 15)"},
}
_EXPECTED = {
    "expectedGeneration": {
        **_INT,
        "minimum": 0,
        "description": "apply only if the node is at this generation (else error -32001, CONFLICT)",
    }
}
_SPEC_TEXT = {
    "yaml": {**_STR, "maxLength": 1 << 20, "description": "the whole spec, YAML or JSON"},
}
_SOURCE = {"source": {**_STR, "maxLength": 4096, "description": "where the text came from"}}
_PEER = _obj(
    {
        "name": _STR,
        "peerId": _STR,
        "addrs": _list(_STR),
        "declared": _BOOL,
        "state": {"enum": ["disconnected", "dialing", "connected"]},
        "connection": _STR_OR_NULL,
        "lastRttMs": _NUM_OR_NULL,
        "models": {**_list(_STR), "description": "what the peer offers this node (its hello)"},
        "modelsStale": {
            **_BOOL,
            "description": "the models are the peer's last offer, not usable now: it is away",
        },
        "trusted": {**_BOOL, "description": "whether the peer may use this node"},
        "sharedModels": {
            "type": ["array", "null"],
            "items": _STR,
            "description": 'globs of this node\'s models the peer may use (["*"]: all); '
            "null when it is not trusted",
        },
        "rateLimit": {
            "oneOf": [
                _obj({"requestsPerMinute": _INT_OR_NULL, "concurrent": _INT_OR_NULL}),
                {"type": "null"},
            ],
            "description": "the peer's limits on this node; null when none",
        },
        "remoteName": _STR_OR_NULL,
        "version": _STR_OR_NULL,
        "load": _INT,
        "bytesIn": _INT,
        "bytesOut": _INT,
        "requestsServed": _INT,
        "requestsSent": _INT,
        "lastError": _STR_OR_NULL,
        "since": _NUM,
    },
    {"lastSeen": {**_NUM_OR_NULL, "description": "unix seconds of its last hello, any run"}},
)
_PROVIDER = _obj(
    {
        "name": _STR,
        "kind": _STR,
        "source": _STR,
        "url": _STR_OR_NULL,
        "health": _obj(
            {
                "state": _STR,
                "latencyMs": _NUM_OR_NULL,
                "error": _STR_OR_NULL,
                "version": _STR_OR_NULL,
                "checkedAt": _NUM_OR_NULL,
            }
        ),
        "models": _list(_STR),
        "breaker": _STR,
        "outstanding": _INT,
        "ewmaLatencyMs": _NUM,
        "requests": _INT,
        "errors": _INT,
    }
)
_REQUEST = _obj(
    {
        "id": _STR,
        "startedAt": _NUM,
        "method": _STR,
        "path": _STR,
        "model": _STR_OR_NULL,
        "source": _STR,
        "targetNode": _STR_OR_NULL,
        "provider": _STR_OR_NULL,
        "status": _INT,
        "latencyMs": _NUM,
        "ttftMs": _NUM_OR_NULL,
        "promptTokens": _INT_OR_NULL,
        "completionTokens": _INT_OR_NULL,
        "attempts": _INT,
        "stream": _BOOL,
        "error": _STR_OR_NULL,
    }
)
_HISTORY_ENTRY = _obj(
    {"generation": _INT, "appliedAt": _STR, "origin": _STR, "source": _STR, "digest": _STR}
)
_LOG_ENTRY = _obj({"ts": _STR, "level": _LEVEL, "logger": _STR, "msg": _STR})
_EVENT_TYPE = {"enum": list(EVENT_TYPES)}


@dataclass(frozen=True, slots=True)
class MethodContract:
    name: str
    summary: str
    params: Mapping[str, Any]  # a closed object schema: params are by name
    result: Mapping[str, Any]
    mutates: bool = False  # goes through spec.apply
    websocket_only: bool = False  # needs a connection to deliver to (subscriptions)
    errors: tuple[int, ...] = ()


_SPEC_ERRORS = (SPEC_INVALID, CONFLICT, GATE_ERROR)

_SPEC_AND_STATUS: tuple[MethodContract, ...] = (
    MethodContract(
        "node.status",
        "The node: identity, spec generations, components, peers.",
        _params(),
        _STATUS,
    ),
    MethodContract(
        "node.shutdown", "Stop the node gracefully.", _params(), _obj({"shuttingDown": _BOOL})
    ),
    MethodContract(
        "node.loginLink",
        "A one-time link that logs a browser in to the web UI (`gate ui`).",
        _params(
            optional={
                "ttl": {
                    **_NUM,
                    "minimum": 5,
                    "maximum": 600,
                    "description": "seconds the link stays valid (default 120)",
                }
            }
        ),
        _obj({"url": _STR, "expiresAt": _STR}),
    ),
    MethodContract(
        "identity.show",
        "The node's public identity in its three forms.",
        _params(),
        _obj({"peerId": _STR, "hex": _STR, "label": _STR, "publicKey": _STR}),
    ),
    MethodContract(
        "spec.get",
        "The running spec (no secrets: keys are named by env var).",
        _params(),
        _obj({"generation": _INT, "document": {"type": "object"}, "yaml": _STR}),
    ),
    MethodContract(
        "spec.validate",
        "Check a spec without applying it.",
        _params(_SPEC_TEXT, _SOURCE),
        _obj({"valid": _BOOL, "kind": _STR, "migratedFrom": _STR_OR_NULL}),
        errors=(SPEC_INVALID,),
    ),
    MethodContract(
        "spec.diff",
        "What applying a spec would change, as a unified diff.",
        _params(_SPEC_TEXT, _SOURCE),
        _obj({"generation": _INT, "diff": _STR}),
        errors=(SPEC_INVALID,),
    ),
    MethodContract(
        "spec.apply",
        "Validate, record and converge to a new spec; the file is rewritten with its comments.",
        _params(_SPEC_TEXT, {**_SOURCE, **_EXPECTED, "dryRun": _BOOL, **_WAIT}),
        _APPLY_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "spec.rollback",
        "Re-apply an earlier generation (default: the previous).",
        _params(optional={"generation": {**_INT, "minimum": 1}, **_WAIT}),
        _APPLY_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "spec.history",
        "Accepted generations, newest first.",
        _params(optional={"limit": {**_INT, "minimum": 1, "maximum": 1000}}),
        _list(_HISTORY_ENTRY),
    ),
    MethodContract("peers.list", "Peers and their links.", _params(), _list(_PEER)),
    MethodContract(
        "peers.test",
        "One hello round trip to a peer (dials it if needed).",
        _params({"name": {**_STR, "description": "name, peer id, hex or label"}}),
        _PEER,
        errors=(GATE_ERROR,),
    ),
    MethodContract(
        "peers.add",
        "Add a peer to the spec (through spec.apply); with trusted, also a trust.allow rule "
        "that lets it use this node.",
        _params(
            {"name": _STR, "id": _STR},
            {
                "addrs": {**_list(_STR), "maxItems": 16},
                "trusted": {
                    **_BOOL,
                    "description": "let the peer use this node (default false: this node "
                    "may use the peer, not the other way round)",
                },
                "models": {
                    **_list({**_STR, "minLength": 1}),
                    "minItems": 1,
                    "maxItems": 256,
                    "description": "globs of the models it may use (default all); needs trusted",
                },
                "rateLimit": {
                    **_params(
                        optional={
                            "requestsPerMinute": {**_INT, "minimum": 1},
                            "concurrent": {**_INT, "minimum": 1},
                        }
                    ),
                    "description": "its limits (default none); needs trusted",
                },
                **_EXPECTED,
                **_WAIT,
            },
        ),
        _APPLY_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "peers.rm",
        "Remove a peer and its trust.allow rule from the spec (through spec.apply).",
        _params({"name": _STR}, {**_EXPECTED, **_WAIT}),
        _APPLY_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "providers.list",
        "Providers, their health, breaker state and models.",
        _params(),
        _list(_PROVIDER),
    ),
    MethodContract(
        "providers.test",
        "Probe providers now (one by name, or all).",
        _params(optional={"name": _STR}),
        _list(_PROVIDER),
    ),
    MethodContract(
        "requests.list",
        "Recent requests, newest first.",
        _params(
            optional={
                "limit": {**_INT, "minimum": 1, "maximum": 10_000},
                "before": {**_NUM, "description": "only requests started before (unix seconds)"},
                "model": _STR,
                "status": {**_INT, "minimum": 100, "maximum": 599},
            }
        ),
        _list(_REQUEST),
    ),
    MethodContract(
        "requests.get", "One request by id.", _params({"id": _STR}), _REQUEST, errors=(GATE_ERROR,)
    ),
    MethodContract(
        "metrics.get",
        "The node's metrics as samples (the same as GET /metrics).",
        _params(optional={"prefix": {**_STR, "description": "only metrics named so"}}),
        _obj({"samples": _list(_obj({"name": _STR, "labels": {"type": "object"}, "value": _NUM}))}),
    ),
    MethodContract(
        "logs.tail",
        "The node's most recent log records, oldest first.",
        _params(optional={"limit": {**_INT, "minimum": 1, "maximum": 1000}, "level": _LEVEL}),
        _list(_LOG_ENTRY),
    ),
    MethodContract(
        "events.subscribe",
        "Receive events as `events.event` notifications on this WebSocket.",
        _params(
            optional={
                "types": {**_list(_EVENT_TYPE), "minItems": 1, "uniqueItems": True},
                "level": {**_LEVEL, "description": "least level of `log` events (default info)"},
                "queue": {
                    **_INT,
                    "minimum": 1,
                    "maximum": 10_000,
                    "description": "events held for a slow reader before the oldest are "
                    "dropped (default 1000)",
                },
            }
        ),
        _obj({"subscription": _STR, "seq": _INT}),
        websocket_only=True,
        errors=(NEEDS_WEBSOCKET,),
    ),
    MethodContract(
        "events.unsubscribe",
        "Stop a subscription.",
        _params({"subscription": _STR}),
        _obj({"unsubscribed": _BOOL}),
        websocket_only=True,
        errors=(NEEDS_WEBSOCKET,),
    ),
    MethodContract(
        "rpc.discover", "This document (OpenRPC service discovery).", _params(), {"type": "object"}
    ),
)

# -- pairing (components/control/pairing.py) ------------------------------------------------

# What a peer may use of this node, as peers.add takes it (one definition, shared).
_GRANT_PARAMS = {
    key: next(c for c in _SPEC_AND_STATUS if c.name == "peers.add").params["properties"][key]
    for key in ("trusted", "models", "rateLimit")
}
_PEER_REF = _obj({"name": _STR, "peerId": _STR, "addrs": _list(_STR)})
_PAIRED_RESULT = {
    **_APPLY_RESULT,
    "properties": {**_APPLY_RESULT["properties"], "peer": _PEER_REF},
}
_PEER_ID_PARAM = {**_STR, "maxLength": 128, "description": "peer id (12D3KooW...), hex or label"}
_PENDING = _obj(
    {
        "peerId": _STR,
        "name": {**_STR_OR_NULL, "description": "the name it gave itself in its hello"},
        "address": {**_STR_OR_NULL, "description": "host:port its connection came from"},
        "firstSeen": {**_NUM, "description": "unix seconds"},
        "lastSeen": {**_NUM, "description": "unix seconds (updated at most once a minute)"},
        "count": {**_INT, "description": "hellos and requests seen from it"},
    }
)

PAIRING_CONTRACTS: tuple[MethodContract, ...] = (
    MethodContract(
        "peers.invite",
        "This node's invite: its peer id, dialable addresses and name, signed by its key. "
        "A friend's node adds this node by accepting it (peers.accept).",
        _params(
            optional={
                "ttl": {
                    **_NUM,
                    "minimum": 60,
                    "maximum": 30 * 86400,
                    "description": "seconds the invite stays valid (default 7 days)",
                }
            }
        ),
        _obj(
            {
                "invite": {**_STR, "description": "the token: gate-invite:v1:..."},
                "link": {**_STR, "description": "the invite in a link to the web UI"},
                "expiresAt": _STR,
                "peerId": _STR,
                "name": _STR,
                "addrs": _list(_STR),
            },
            {"note": {**_STR, "description": "why a friend may not be able to dial it"}},
        ),
    ),
    MethodContract(
        "peers.accept",
        "Add the node of a friend's invite to the spec (as peers.add, through spec.apply), "
        "after checking its signature, expiry and addresses.",
        _params(
            {
                # No maxLength: the invite's own check refuses an oversized paste with a
                # message that says so (the 2 MiB body limit bounds what arrives).
                "invite": {
                    **_STR,
                    "description": "the gate-invite:v1:... text, or a link that carries it",
                }
            },
            {
                "name": {**_STR, "description": "the peer's name here (default: the invite's)"},
                **_GRANT_PARAMS,
                **_EXPECTED,
                **_WAIT,
            },
        ),
        _PAIRED_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "peers.pending",
        "Peers not in the spec that dialed in or said hello, most recent first (kept 7 days, "
        "at most 100); nothing reaches the spec until one is approved.",
        _params(),
        _list(_PENDING),
    ),
    MethodContract(
        "peers.approve",
        "Add a pending peer to the spec (as peers.add, through spec.apply) and drop its request.",
        _params(
            {"peerId": _PEER_ID_PARAM},
            {
                "name": {**_STR, "description": "the peer's name here (default: the one it gave)"},
                **_GRANT_PARAMS,
                **_EXPECTED,
                **_WAIT,
            },
        ),
        _PAIRED_RESULT,
        mutates=True,
        errors=_SPEC_ERRORS,
    ),
    MethodContract(
        "peers.ignore",
        "Hide a pending request; the spec does not change. The peer stays hidden while it "
        "keeps dialing, and may ask again after 7 days of silence.",
        _params({"peerId": _PEER_ID_PARAM}),
        _obj({"ignored": _BOOL, "peerId": _STR}),
    ),
)

# Every method of the control plane; a kind serves its subset (contracts_for).
CONTRACTS: tuple[MethodContract, ...] = (*_SPEC_AND_STATUS, *PAIRING_CONTRACTS)

ERRORS: tuple[dict[str, Any], ...] = (
    {"code": PARSE_ERROR, "message": "Parse error", "data": "none: the body is not JSON"},
    {"code": INVALID_REQUEST, "message": "Invalid Request", "data": "none"},
    {"code": METHOD_NOT_FOUND, "message": "Method not found", "data": "none"},
    {
        "code": INVALID_PARAMS,
        "message": "Invalid params",
        "data": '{"errors": [{"path": "limit", "message": "..."}]}: one entry per problem',
    },
    {"code": INTERNAL_ERROR, "message": "Internal error", "data": "none: the node's log has it"},
    {
        "code": SPEC_INVALID,
        "message": "Spec invalid",
        "data": '{"issues": [{"message", "path", "source", "line", "column", "hint"}]}',
    },
    {
        "code": CONFLICT,
        "message": "Conflict",
        "data": '{"expected": int, "current": int}: expectedGeneration was not current',
    },
    {
        "code": GATE_ERROR,
        "message": "Gate error",
        "data": '{"hint": str | null}: what to do about it',
    },
    {
        "code": NEEDS_WEBSOCKET,
        "message": "Needs the WebSocket",
        "data": '{"hint": str}: call it on /rpc/ws',
    },
)

EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    "spec.applied": _obj({"generation": _INT, "origin": _STR, "source": _STR, "appliedAt": _STR}),
    "spec.rejected": _obj(
        {"generation": _INT, "origin": _STR, "error": _STR, "issues": _list({"type": "object"})}
    ),
    "component.status": _COMPONENT,
    "peer.connected": _obj({"peerId": _STR, "name": _STR}),
    "peer.disconnected": _obj({"peerId": _STR, "name": _STR, "error": _STR_OR_NULL}),
    # A peer not in the spec asked to connect (or said its name): peers.pending has it.
    "peer.pending": _obj({"peerId": _STR, "name": _STR_OR_NULL}),
    "request.completed": _REQUEST,
    "log": _LOG_ENTRY,
}
_EVENT_NOTIFICATION = _obj(
    {
        "subscription": _STR,
        "seq": {**_INT, "description": "numbered per node run; a gap means dropped events"},
        "type": _EVENT_TYPE,
        "time": _STR,
        "data": {"type": "object"},
        "dropped": {**_INT, "description": "events this subscription has lost so far"},
    }
)


def contracts_for(names: Iterable[str]) -> tuple[MethodContract, ...]:
    """The contracts of the methods ``names`` (a kind's table), with the WebSocket-only ones
    every control server has, in CONTRACTS order."""
    wanted = set(names)
    unknown = wanted - {c.name for c in CONTRACTS}
    if unknown:
        raise ValueError(f"methods without contracts: {sorted(unknown)}")
    return tuple(c for c in CONTRACTS if c.name in wanted or c.websocket_only)


def openrpc_document(
    server_url: str, contracts: Iterable[MethodContract] = CONTRACTS
) -> dict[str, Any]:
    """The OpenRPC 1.2 document served at GET /rpc/openrpc.json and by rpc.discover."""
    methods = []
    for contract in contracts:
        schema = contract.params
        required = set(schema.get("required", ()))
        methods.append(
            {
                "name": contract.name,
                "summary": contract.summary,
                "paramStructure": "by-name",
                "params": [
                    {"name": name, "required": name in required, "schema": sub}
                    for name, sub in schema.get("properties", {}).items()
                ],
                "result": {"name": "result", "schema": dict(contract.result)},
                "errors": [e for e in ERRORS if e["code"] in contract.errors],
                "x-mutates-spec": contract.mutates,
                "x-websocket-only": contract.websocket_only,
                "x-params-schema": dict(schema),
            }
        )
    return {
        "openrpc": "1.2.6",
        "info": {
            "title": "Gate control plane",
            "version": __version__,
            "description": "JSON-RPC 2.0 on POST /rpc and the WebSocket /rpc/ws. Every call "
            "needs `Authorization: Bearer <dataDir/control.token>` or the web UI's session "
            "cookie. Events arrive on the WebSocket as `events.event` notifications.",
        },
        "servers": [{"name": "this node", "url": server_url}],
        "methods": methods,
        "x-errors": list(ERRORS),
        "x-events": {
            "notification": {"method": "events.event", "params": _EVENT_NOTIFICATION},
            "types": EVENT_SCHEMAS,
        },
    }
