"""The control plane's methods: each one reads status or changes the spec through the node.

``core_methods`` are every kind's (node, spec, identity, metrics, logs); ``node_methods`` are a
node's own (peers, providers, requests). A kind's module picks its tables (reconcile/node.py).
"""

from __future__ import annotations

__all__ = ("CORE_METHODS", "Serving", "core_methods", "edit_peers", "node_methods")

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from gate_runner.components.base import NodeHandle
from gate_runner.components.control.auth import LOGIN_TTL, Gatekeeper
from gate_runner.components.control.contract import MethodContract, openrpc_document
from gate_runner.components.control.rpc import InvalidParams, Method
from gate_runner.errors import GateError
from gate_runner.events import LOG_LEVELS
from gate_runner.spec import canonical_yaml
from gate_runner.state.peerbook import PeerBook

if TYPE_CHECKING:
    from gate_runner.identity import Identity
    from gate_runner.logs import LogFeed
    from gate_runner.metrics import Metrics
    from gate_runner.peers import PeerTable
    from gate_runner.providers.registry import ProviderRegistry
    from gate_runner.state import StateDB
    from gate_runner.state.requests import RequestLog


# What core_methods serves (the dispatcher checks each against its contract).
CORE_METHODS = (
    "node.status",
    "node.shutdown",
    "node.loginLink",
    "identity.show",
    "metrics.get",
    "logs.tail",
    "rpc.discover",
    "spec.get",
    "spec.validate",
    "spec.diff",
    "spec.apply",
    "spec.rollback",
    "spec.history",
)


@dataclass(frozen=True, slots=True)
class Serving:
    """One running control server, as its methods see it. ``stopping`` is the instance's stop
    trigger: a call waiting for convergence returns early when the apply it made restarts this
    very control server."""

    node: NodeHandle
    stopping: anyio.Event
    gatekeeper: Gatekeeper

    async def wait_converged(self, generation: int, limit: float) -> bool:
        converged = False
        with anyio.move_on_after(limit):
            async with anyio.create_task_group() as tg:

                async def stop_waiting() -> None:
                    await self.stopping.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(stop_waiting)
                await self.node.wait_observed(generation)
                converged = True
                tg.cancel_scope.cancel()
        return converged

    async def with_convergence(self, result: dict[str, Any], params: dict[str, Any]) -> Any:
        """An apply's result, after waiting (unless ``wait: false``) for the node to converge."""
        if result.get("changed") and not result.get("dryRun"):
            if params.get("wait", True):
                timeout = float(params.get("timeout", 15.0))
                result["converged"] = await self.wait_converged(result["generation"], timeout)
            status = self.node.status()
            result["observedGeneration"] = status["spec"]["observedGeneration"]
            result["components"] = status["components"]
        return result


async def edit_peers(
    serving: Serving, params: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> Any:
    """Change the peers (and their trust) by editing the spec and applying it: no change
    behind the reconciler. ``change`` edits a copy of the spec section (its peers and trust
    lists are copies) and raises InvalidParams to refuse."""
    node = serving.node
    document = node.spec_document()
    spec = dict(document.get("spec") or {})
    spec["peers"] = [dict(p) for p in spec.get("peers") or []]
    trust = dict(spec.get("trust") or {})
    trust["allow"] = [dict(r) for r in trust.get("allow") or []]
    spec["trust"] = trust
    change(spec)
    if not trust["allow"]:
        del trust["allow"]
    if not trust:
        del spec["trust"]
    new_document = {**document, "spec": spec}
    result = await node.apply(
        canonical_yaml(new_document),
        source="rpc",
        expected_generation=params.get("expectedGeneration"),
    )
    return await serving.with_convergence(result, params)


def core_methods(
    serving: Serving,
    *,
    identity: Identity,
    metrics: Metrics,
    logs: LogFeed,
    contracts: Sequence[MethodContract],
) -> dict[str, Method]:
    """The methods every kind serves: node, spec, identity, metrics, logs, rpc.discover."""
    node = serving.node
    base_url = serving.gatekeeper.base_url

    async def node_status(params: dict[str, Any]) -> Any:
        return node.status()

    async def node_shutdown(params: dict[str, Any]) -> Any:
        node.shutdown()
        return {"shuttingDown": True}

    async def login_link(params: dict[str, Any]) -> Any:
        code, expires = serving.gatekeeper.new_login(float(params.get("ttl", LOGIN_TTL)))
        return {
            "url": f"{base_url}/login?code={code}",
            "expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        }

    async def identity_show(params: dict[str, Any]) -> Any:
        node_id = identity.node_id
        return {
            "peerId": node_id.peer_id,
            "hex": node_id.hex,
            "label": node_id.label,
            "publicKey": node_id.public_key.hex(),
        }

    async def metrics_get(params: dict[str, Any]) -> Any:
        prefix = params.get("prefix", "")
        samples = [
            {"name": sample.name, "labels": sample.labels, "value": sample.value}
            for family in metrics.registry.collect()
            for sample in family.samples
            if sample.name.startswith(prefix) and math.isfinite(sample.value)
        ]
        return {"samples": samples}

    async def logs_tail(params: dict[str, Any]) -> Any:
        level = LOG_LEVELS[params.get("level", "debug")]
        return logs.tail(params.get("limit", 100), min_level=level)

    async def discover(params: dict[str, Any]) -> Any:
        return openrpc_document(f"{base_url}/rpc", contracts)

    async def spec_get(params: dict[str, Any]) -> Any:
        document = node.spec_document()
        status = node.status()["spec"]
        return {
            "generation": status["generation"],
            "document": document,
            "yaml": canonical_yaml(document),
        }

    def text_and_source(params: dict[str, Any]) -> tuple[str, str]:
        return params["yaml"], params.get("source") or "rpc"

    async def spec_validate(params: dict[str, Any]) -> Any:
        text, source = text_and_source(params)
        return await node.validate(text, source=source)

    async def spec_diff(params: dict[str, Any]) -> Any:
        text, source = text_and_source(params)
        return await node.diff(text, source=source)

    async def spec_apply(params: dict[str, Any]) -> Any:
        text, source = text_and_source(params)
        result = await node.apply(
            text,
            source=source,
            expected_generation=params.get("expectedGeneration"),
            dry_run=params.get("dryRun", False),
        )
        return await serving.with_convergence(result, params)

    async def spec_rollback(params: dict[str, Any]) -> Any:
        result = await node.rollback(params.get("generation"))
        return await serving.with_convergence(result, params)

    async def spec_history(params: dict[str, Any]) -> Any:
        return await node.history(params.get("limit", 50))

    return {
        "node.status": node_status,
        "node.shutdown": node_shutdown,
        "node.loginLink": login_link,
        "identity.show": identity_show,
        "metrics.get": metrics_get,
        "logs.tail": logs_tail,
        "rpc.discover": discover,
        "spec.get": spec_get,
        "spec.validate": spec_validate,
        "spec.diff": spec_diff,
        "spec.apply": spec_apply,
        "spec.rollback": spec_rollback,
        "spec.history": spec_history,
    }


def node_methods(
    serving: Serving,
    *,
    requests: RequestLog,
    providers: ProviderRegistry,
    peers: PeerTable,
    state: StateDB,
    probe: Callable[[str], Awaitable[None]],
) -> dict[str, Method]:
    """A node's own methods: peers, providers and requests. ``probe`` is the p2p component's
    round trip to one peer (peers.test)."""

    async def requests_list(params: dict[str, Any]) -> Any:
        records = await requests.list(
            limit=params.get("limit", 100),
            before=params.get("before"),
            model=params.get("model"),
            status=params.get("status"),
        )
        return [r.to_dict() for r in records]

    async def requests_get(params: dict[str, Any]) -> Any:
        record = await requests.get(params["id"])
        if record is None:
            raise GateError(
                f"no request {params['id']!r} in the log",
                hint="it may have aged out; see requests.list",
            )
        return record.to_dict()

    async def providers_list(params: dict[str, Any]) -> Any:
        return [e.to_dict() for e in providers.entries()]

    async def providers_test(params: dict[str, Any]) -> Any:
        """Probe providers now (one by name, or all): health, latency and models."""
        name = params.get("name")
        entries = providers.entries()
        if name is not None:
            entries = [e for e in entries if e.name == name]
            if not entries:
                raise InvalidParams(f"no provider named {name!r}; see providers.list")
        async with anyio.create_task_group() as tg:
            for entry in entries:
                tg.start_soon(providers.refresh, entry)
        return [e.to_dict() for e in entries]

    async def peers_list(params: dict[str, Any]) -> Any:
        seen = await PeerBook(state).last_seen()
        return [{**p.to_dict(), "lastSeen": seen.get(p.peer_id)} for p in peers.all()]

    async def peers_test(params: dict[str, Any]) -> Any:
        ref = params["name"]
        peer = peers.find(ref)
        if peer is None:
            raise InvalidParams(f"no peer {ref!r}; see peers.list")
        await probe(peer.peer_id)
        return peer.to_dict()

    async def peers_add(params: dict[str, Any]) -> Any:
        entry: dict[str, Any] = {"name": params["name"], "id": params["id"]}
        addrs = params.get("addrs")
        if addrs:
            entry["addrs"] = addrs
        # Knowing a peer and trusting it are separate choices (DESIGN.md 2): only `trusted`
        # lets the peer use this node, and the rule's narrowing means nothing without it.
        rule: dict[str, Any] | None = None
        if params.get("trusted"):
            rule = {"peer": entry["name"]}
            if "models" in params:
                rule["models"] = params["models"]
            if "rateLimit" in params:
                rule["rateLimit"] = params["rateLimit"]
        elif "models" in params or "rateLimit" in params:
            raise InvalidParams(
                "models and rateLimit narrow what a trusted peer may use: add trusted: true "
                "(`gate peers add NAME ID --trusted --models ...`), or leave them out"
            )

        def add(spec: dict[str, Any]) -> None:
            if any(p.get("name") == entry["name"] for p in spec["peers"]):
                raise InvalidParams(f"a peer named {entry['name']!r} exists; remove it first")
            spec["peers"].append(entry)
            if rule is not None:
                spec["trust"]["allow"].append(rule)

        return await edit_peers(serving, params, add)

    async def peers_rm(params: dict[str, Any]) -> Any:
        name = params["name"]

        def remove(spec: dict[str, Any]) -> None:
            declared = spec["peers"]
            kept = [p for p in declared if p.get("name") != name]
            if len(kept) == len(declared):
                raise InvalidParams(f"no peer named {name!r} in the spec")
            spec["peers"] = kept
            # A rule must name a declared peer: the peer's rule goes with it.
            allow = spec["trust"]["allow"]
            allow[:] = [r for r in allow if r.get("peer") != name]

        return await edit_peers(serving, params, remove)

    return {
        "peers.list": peers_list,
        "peers.test": peers_test,
        "peers.add": peers_add,
        "peers.rm": peers_rm,
        "requests.list": requests_list,
        "requests.get": requests_get,
        "providers.list": providers_list,
        "providers.test": providers_test,
    }
