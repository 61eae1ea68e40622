"""The control plane's methods: each one reads status or changes the spec through the node."""

from __future__ import annotations

__all__ = ("build_methods",)

import math
import time
from collections.abc import Callable
from typing import Any

import anyio

from gate_runner.components.base import NodeHandle, Services
from gate_runner.components.control.auth import LOGIN_TTL, Gatekeeper
from gate_runner.components.control.contract import openrpc_document
from gate_runner.components.control.rpc import InvalidParams, Method
from gate_runner.errors import GateError
from gate_runner.events import LOG_LEVELS
from gate_runner.spec import canonical_yaml
from gate_runner.state.peerbook import PeerBook


def build_methods(
    services: Services, *, stopping: anyio.Event, gatekeeper: Gatekeeper
) -> dict[str, Method]:
    """``stopping`` is the serving instance's stop trigger: a call waiting for convergence
    returns early when the apply it made restarts this very control server."""
    node: NodeHandle = services.node
    base_url = gatekeeper.base_url

    async def wait_converged(generation: int, limit: float) -> bool:
        converged = False
        with anyio.move_on_after(limit):
            async with anyio.create_task_group() as tg:

                async def stop_waiting() -> None:
                    await stopping.wait()
                    tg.cancel_scope.cancel()

                tg.start_soon(stop_waiting)
                await node.wait_observed(generation)
                converged = True
                tg.cancel_scope.cancel()
        return converged

    async def node_status(params: dict[str, Any]) -> Any:
        return node.status()

    async def node_shutdown(params: dict[str, Any]) -> Any:
        node.shutdown()
        return {"shuttingDown": True}

    async def login_link(params: dict[str, Any]) -> Any:
        code, expires = gatekeeper.new_login(float(params.get("ttl", LOGIN_TTL)))
        return {
            "url": f"{base_url}/login?code={code}",
            "expiresAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
        }

    async def identity_show(params: dict[str, Any]) -> Any:
        node_id = services.identity.node_id
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
            for family in services.metrics.registry.collect()
            for sample in family.samples
            if sample.name.startswith(prefix) and math.isfinite(sample.value)
        ]
        return {"samples": samples}

    async def logs_tail(params: dict[str, Any]) -> Any:
        level = LOG_LEVELS[params.get("level", "debug")]
        return services.logs.tail(params.get("limit", 100), min_level=level)

    async def discover(params: dict[str, Any]) -> Any:
        return openrpc_document(f"{base_url}/rpc")

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
        return await with_convergence(result, params)

    async def with_convergence(result: dict[str, Any], params: dict[str, Any]) -> Any:
        if result.get("changed") and not result.get("dryRun"):
            if params.get("wait", True):
                timeout = float(params.get("timeout", 15.0))
                result["converged"] = await wait_converged(result["generation"], timeout)
            status = node.status()
            result["observedGeneration"] = status["spec"]["observedGeneration"]
            result["components"] = status["components"]
        return result

    async def spec_rollback(params: dict[str, Any]) -> Any:
        result = await node.rollback(params.get("generation"))
        return await with_convergence(result, params)

    async def spec_history(params: dict[str, Any]) -> Any:
        return await node.history(params.get("limit", 50))

    async def requests_list(params: dict[str, Any]) -> Any:
        records = await services.requests.list(
            limit=params.get("limit", 100),
            before=params.get("before"),
            model=params.get("model"),
            status=params.get("status"),
        )
        return [r.to_dict() for r in records]

    async def requests_get(params: dict[str, Any]) -> Any:
        record = await services.requests.get(params["id"])
        if record is None:
            raise GateError(
                f"no request {params['id']!r} in the log",
                hint="it may have aged out; see requests.list",
            )
        return record.to_dict()

    async def providers_list(params: dict[str, Any]) -> Any:
        return [e.to_dict() for e in services.providers.entries()]

    async def providers_test(params: dict[str, Any]) -> Any:
        """Probe providers now (one by name, or all): health, latency and models."""
        name = params.get("name")
        entries = services.providers.entries()
        if name is not None:
            entries = [e for e in entries if e.name == name]
            if not entries:
                raise InvalidParams(f"no provider named {name!r}; see providers.list")
        async with anyio.create_task_group() as tg:
            for entry in entries:
                tg.start_soon(services.providers.refresh, entry)
        return [e.to_dict() for e in entries]

    async def peers_list(params: dict[str, Any]) -> Any:
        seen = await PeerBook(services.state).last_seen()
        return [{**p.to_dict(), "lastSeen": seen.get(p.peer_id)} for p in services.peers.all()]

    async def peers_test(params: dict[str, Any]) -> Any:
        ref = params["name"]
        peer = services.peers.find(ref)
        if peer is None:
            raise InvalidParams(f"no peer {ref!r}; see peers.list")
        if services.peers.probe is None:
            raise GateError("the p2p component is not running", hint="see `gate status`")
        await services.peers.probe(peer.peer_id)
        return peer.to_dict()

    async def change_peers(params: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> Any:
        """peers.add / peers.rm edit the spec and apply it: no change behind the reconciler.
        ``change`` edits a copy of the spec section (its peers and trust lists are copies)."""
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
        return await with_convergence(result, params)

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

        return await change_peers(params, add)

    async def peers_rm(params: dict[str, Any]) -> Any:
        name = params["name"]

        def remove(spec: dict[str, Any]) -> None:
            peers = spec["peers"]
            kept = [p for p in peers if p.get("name") != name]
            if len(kept) == len(peers):
                raise InvalidParams(f"no peer named {name!r} in the spec")
            spec["peers"] = kept
            # A rule must name a declared peer: the peer's rule goes with it.
            allow = spec["trust"]["allow"]
            allow[:] = [r for r in allow if r.get("peer") != name]

        return await change_peers(params, remove)

    table: dict[str, Method] = {
        "peers.list": peers_list,
        "peers.test": peers_test,
        "peers.add": peers_add,
        "peers.rm": peers_rm,
        "requests.list": requests_list,
        "requests.get": requests_get,
        "node.loginLink": login_link,
        "identity.show": identity_show,
        "metrics.get": metrics_get,
        "logs.tail": logs_tail,
        "rpc.discover": discover,
        "providers.list": providers_list,
        "providers.test": providers_test,
        "node.status": node_status,
        "node.shutdown": node_shutdown,
        "spec.get": spec_get,
        "spec.validate": spec_validate,
        "spec.diff": spec_diff,
        "spec.apply": spec_apply,
        "spec.rollback": spec_rollback,
        "spec.history": spec_history,
    }
    return table
