"""The `api` component: the OpenAI-compatible endpoint on spec.listen.api."""

from __future__ import annotations

__all__ = ("ApiComponent", "ApiSlice", "request_recorder")

import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from gate_runner.components.api.app import ApiApp
from gate_runner.components.base import RunContext
from gate_runner.components.httpserve import bind_tcp, serve_asgi
from gate_runner.components.sites import SitePolicy
from gate_runner.errors import PermanentError, TransientError
from gate_runner.metrics import Metrics
from gate_runner.router import Proxy, RequestOutcome
from gate_runner.spec import HostPort, NodeSpec
from gate_runner.state.requests import RequestLog, RequestRecord
from gate_runner.wire.openai import ENDPOINTS

if TYPE_CHECKING:
    from gate_runner.identity import Identity
    from gate_runner.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)

# In-flight requests on a socket being given up (a new listen address, or shutdown) get this
# long to finish; streams of long generations are the ones that need it.
GRACEFUL_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class ApiSlice:
    address: HostPort
    api_keys: tuple[str, ...]  # names of env vars
    hosts: tuple[str, ...]
    cors_origins: tuple[str, ...]

    def sites(self) -> SitePolicy:
        return SitePolicy(bound_host=self.address.host, hosts=self.hosts, origins=self.cors_origins)


@dataclass(slots=True)
class _Live:
    app: ApiApp
    proxy: Proxy
    task_group: TaskGroup
    stop_serving: anyio.Event
    ctx: RunContext


def _resolve_keys(names: tuple[str, ...]) -> frozenset[bytes]:
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise PermanentError(
            f"spec.listen.apiKeys names {', '.join(missing)}, which is not set",
            hint="export the variable before `gate up`, or remove it from apiKeys",
        )
    return frozenset(os.environ[n].encode() for n in names)


class ApiComponent:
    kind: ClassVar[str] = "api"

    def __init__(self, *, identity: Identity, router: Proxy, providers: ProviderRegistry) -> None:
        self._identity = identity
        self._router = router
        self._providers = providers
        self._live: dict[str, _Live] = {}

    def desired(self, spec: NodeSpec) -> Mapping[str, ApiSlice]:
        return {
            "api": ApiSlice(
                address=spec.listen.api,
                api_keys=spec.listen.api_keys,
                hosts=spec.listen.api_hosts,
                cors_origins=spec.listen.cors_origins,
            )
        }

    def _node_info(self) -> dict[str, str]:
        live = next(iter(self._live.values()), None)
        return {
            "hex": self._identity.node_id.hex,
            "name": live.proxy.node_name if live else "",
        }

    async def run(
        self, name: str, slice_: ApiSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        proxy = self._router
        app = ApiApp(
            proxy=proxy,
            registry=self._providers,
            node_info=self._node_info,
            sites=slice_.sites(),
            api_keys=_resolve_keys(slice_.api_keys),
        )
        sock, bound = bind_tcp(slice_.address, what="spec.listen.api")
        async with anyio.create_task_group() as tg:
            stop_serving = anyio.Event()
            await tg.start(self._serve, app, sock, stop_serving)
            self._live[name] = _Live(app, proxy, tg, stop_serving, ctx)
            ctx.set_condition("Ready", True, "Listening", str(bound))
            task_status.started()
            try:
                await ctx.stopping.wait()
            finally:
                live = self._live.pop(name)
                live.stop_serving.set()

    @staticmethod
    async def _serve(
        app: ApiApp,
        sock: socket.socket,
        stop: anyio.Event,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        await serve_asgi(
            app,
            sock,
            stopping=stop,
            graceful_timeout=GRACEFUL_TIMEOUT,
            task_status=task_status,
        )

    async def update(self, name: str, old: ApiSlice, new: ApiSlice) -> bool:
        """Everything applies in place. A new address gets a new socket first; the old one
        then stops accepting and its in-flight requests finish on it."""
        live = self._live.get(name)
        if live is None:
            return False
        try:
            keys = _resolve_keys(new.api_keys)
        except PermanentError:
            return False  # the restart reports it
        if new.address != old.address:
            try:
                sock, bound = bind_tcp(new.address, what="spec.listen.api")
            except (TransientError, PermanentError):
                return False  # the restart path retries and reports the bind error
            stop_new = anyio.Event()
            await live.task_group.start(self._serve, live.app, sock, stop_new)
            live.stop_serving.set()
            live.stop_serving = stop_new
            live.ctx.set_condition("Ready", True, "Listening", str(bound))
        live.app.api_keys = keys
        live.app.sites = new.sites()
        return True


def request_recorder(
    services_metrics: Metrics, requests: RequestLog
) -> tuple[Callable[[], None], Callable[[RequestOutcome, float, float], None]]:
    """The router's two hooks: a request starts; a request ended (record and measure it)."""

    def started() -> None:
        services_metrics.in_flight(1)

    def done(outcome: RequestOutcome, started_at: float, latency: float) -> None:
        usage = outcome.usage or {}
        record = RequestRecord(
            id=outcome.request_id,
            started_at=started_at,
            method="POST",
            path=ENDPOINTS[outcome.op].path,
            model=outcome.model,
            source=outcome.source,
            target_node=outcome.node,
            provider=outcome.provider,
            status=outcome.status,
            latency_ms=latency * 1000,
            ttft_ms=None if outcome.ttft is None else outcome.ttft * 1000,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            attempts=outcome.attempts,
            stream=outcome.stream,
            error=outcome.error,
        )
        services_metrics.in_flight(-1)
        services_metrics.observe(record)
        requests.record(record)

    return started, done
