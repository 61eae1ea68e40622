"""The control plane's methods: each one reads status or changes the spec through the node."""

from __future__ import annotations

__all__ = ("build_methods",)

from collections.abc import Callable
from typing import Any

import anyio

from gate_runner.components.base import NodeHandle, Services
from gate_runner.components.control.rpc import InvalidParams, Method
from gate_runner.errors import GateError
from gate_runner.spec import canonical_yaml
from gate_runner.state.peerbook import PeerBook


def _param(params: dict[str, Any], name: str, kind: type, *, default: Any = ...) -> Any:
    if name not in params:
        if default is ...:
            raise InvalidParams(f"missing {name!r}")
        return default
    value = params[name]
    if kind is int and isinstance(value, bool):
        raise InvalidParams(f"{name!r} must be an integer")
    if value is not None and not isinstance(value, kind):
        raise InvalidParams(f"{name!r} must be {kind.__name__}")
    return value


def build_methods(services: Services, *, stopping: anyio.Event) -> dict[str, Method]:
    """``stopping`` is the serving instance's stop trigger: a call waiting for convergence
    returns early when the apply it made restarts this very control server."""
    node: NodeHandle = services.node

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

    async def spec_get(params: dict[str, Any]) -> Any:
        document = node.spec_document()
        status = node.status()["spec"]
        return {
            "generation": status["generation"],
            "document": document,
            "yaml": canonical_yaml(document),
        }

    def text_and_source(params: dict[str, Any]) -> tuple[str, str]:
        return _param(params, "yaml", str), _param(params, "source", str, default="rpc") or "rpc"

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
            expected_generation=_param(params, "expectedGeneration", int, default=None),
            dry_run=bool(_param(params, "dryRun", bool, default=False)),
        )
        return await with_convergence(result, params)

    async def with_convergence(result: dict[str, Any], params: dict[str, Any]) -> Any:
        if result.get("changed") and not result.get("dryRun"):
            if _param(params, "wait", bool, default=True):
                timeout = float(_param(params, "timeout", (int, float), default=15.0))  # type: ignore[arg-type]
                result["converged"] = await wait_converged(result["generation"], timeout)
            status = node.status()
            result["observedGeneration"] = status["spec"]["observedGeneration"]
            result["components"] = status["components"]
        return result

    async def spec_rollback(params: dict[str, Any]) -> Any:
        result = await node.rollback(_param(params, "generation", int, default=None))
        return await with_convergence(result, params)

    async def spec_history(params: dict[str, Any]) -> Any:
        limit = _param(params, "limit", int, default=50)
        if limit < 1:
            raise InvalidParams("'limit' must be at least 1")
        return await node.history(limit)

    async def requests_list(params: dict[str, Any]) -> Any:
        limit = _param(params, "limit", int, default=100)
        if not 1 <= limit <= 10_000:
            raise InvalidParams("'limit' must be between 1 and 10000")
        records = await services.requests.list(
            limit=limit,
            before=_param(params, "before", (int, float), default=None),  # type: ignore[arg-type]
            model=_param(params, "model", str, default=None),
            status=_param(params, "status", int, default=None),
        )
        return [r.to_dict() for r in records]

    async def providers_list(params: dict[str, Any]) -> Any:
        return [e.to_dict() for e in services.providers.entries()]

    async def providers_test(params: dict[str, Any]) -> Any:
        """Probe providers now (one by name, or all): health, latency and models."""
        name = _param(params, "name", str, default=None)
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
        ref = _param(params, "name", str)
        peer = services.peers.find(ref)
        if peer is None:
            raise InvalidParams(f"no peer {ref!r}; see peers.list")
        if services.peers.probe is None:
            raise GateError("the p2p component is not running", hint="see `gate status`")
        await services.peers.probe(peer.peer_id)
        return peer.to_dict()

    async def change_peers(params: dict[str, Any], change: Callable[[list[Any]], None]) -> Any:
        """peers.add / peers.rm edit the spec and apply it: no change behind the reconciler."""
        document = node.spec_document()
        spec = dict(document.get("spec") or {})
        peers = [dict(p) for p in spec.get("peers") or []]
        change(peers)
        spec["peers"] = peers
        new_document = {**document, "spec": spec}
        result = await node.apply(
            canonical_yaml(new_document),
            source="rpc",
            expected_generation=_param(params, "expectedGeneration", int, default=None),
        )
        return await with_convergence(result, params)

    async def peers_add(params: dict[str, Any]) -> Any:
        entry: dict[str, Any] = {
            "name": _param(params, "name", str),
            "id": _param(params, "id", str),
        }
        addrs = _param(params, "addrs", list, default=None)
        if addrs:
            entry["addrs"] = addrs

        def add(peers: list[Any]) -> None:
            if any(p.get("name") == entry["name"] for p in peers):
                raise InvalidParams(f"a peer named {entry['name']!r} exists; remove it first")
            peers.append(entry)

        return await change_peers(params, add)

    async def peers_rm(params: dict[str, Any]) -> Any:
        name = _param(params, "name", str)

        def remove(peers: list[Any]) -> None:
            kept = [p for p in peers if p.get("name") != name]
            if len(kept) == len(peers):
                raise InvalidParams(f"no peer named {name!r} in the spec")
            peers[:] = kept

        return await change_peers(params, remove)

    table: dict[str, Callable[[dict[str, Any]], Any]] = {
        "peers.list": peers_list,
        "peers.test": peers_test,
        "peers.add": peers_add,
        "peers.rm": peers_rm,
        "requests.list": requests_list,
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
