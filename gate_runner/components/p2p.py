"""The `p2p` component: the libp2p host, links to the spec's peers, hello and HTTP over P2P.

Inbound requests are checked against the trust rules with the Noise-authenticated peer id,
then served by this node's own engines through the same router as local clients.
"""

from __future__ import annotations

__all__ = ("HELLO_PROTOCOL", "P2PComponent", "P2PSlice")

import importlib
import json
import logging
import time
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from gate_runner import __version__
from gate_runner.components.base import RunContext, Services
from gate_runner.errors import GateError
from gate_runner.providers.base import Health, ModelInfo
from gate_runner.providers.remote import RemoteBackend
from gate_runner.router import ClientGone
from gate_runner.spec import NodeSpec, PeerSpec, TrustSpec
from gate_runner.state.peerbook import PeerBook
from gate_runner.trust import PeerAccess, RateLimiter, TrustPolicy
from gate_runner.wire.openai import ENDPOINT_BY_PATH, OpenAIError, parse_model_target

if TYPE_CHECKING:
    from gate_runner.p2p import P2PHost, P2PHttpClient, P2PRequest, P2PStream, ResponseSender

log = logging.getLogger(__name__)

HELLO_PROTOCOL = "/gate/hello/1"
HELLO_VERSION = 1  # the protocol's version, all a peer that may not use us is told
HELLO_INTERVAL = 5.0  # also the keepalive: a link whose hellos fail is dropped and redialed
HELLO_TIMEOUT = 5.0
HELLO_FAILURES_BEFORE_DROP = 3
MAX_HELLO = 256 * 1024


@dataclass(frozen=True, slots=True)
class P2PSlice:
    listen: tuple[str, ...]
    peers: tuple[PeerSpec, ...]
    trust: TrustSpec
    node_name: str


@dataclass(eq=False)
class _Live:
    host: P2PHost
    client: P2PHttpClient
    slice: P2PSlice
    policy: TrustPolicy
    task_group: TaskGroup
    limiter: RateLimiter = field(default_factory=RateLimiter)
    links: dict[str, anyio.CancelScope] = field(default_factory=dict)  # peer id -> its link
    wake: dict[str, anyio.Event] = field(default_factory=dict)  # say hello now


class P2PComponent:
    kind: ClassVar[str] = "p2p"

    def __init__(self, services: Services) -> None:
        self._services = services
        self._live: _Live | None = None
        # While the instance loads py-libp2p, in-place updates land here and are applied
        # as soon as the host is up.
        self._loading: P2PSlice | None = None
        self._warned: tuple[str, ...] = ()  # the untrusted peers last warned of

    def desired(self, spec: NodeSpec) -> Mapping[str, P2PSlice]:
        return {
            "p2p": P2PSlice(
                listen=spec.listen.p2p, peers=spec.peers, trust=spec.trust, node_name=spec.name
            )
        }

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(
        self, name: str, slice_: P2PSlice, ctx: RunContext, *, task_status: TaskStatus[None]
    ) -> None:
        # Importing py-libp2p takes 1.5-2.3 s (DESIGN.md 6): do it off the event loop, and
        # report started before it, so that the node is ready (control, API, local engines)
        # in well under 2 s while its P2P side comes up. Ready turns true once listening.
        ctx.set_condition("Ready", False, "Loading", "importing py-libp2p")
        self._policy(slice_)  # warn of untrusted peers now, not once libp2p has loaded
        self._loading = slice_
        task_status.started()
        p2p = await anyio.to_thread.run_sync(importlib.import_module, "gate_runner.p2p")
        host: P2PHost = p2p.P2PHost(seed=self._services.identity.seed, listen=slice_.listen)
        client: P2PHttpClient = p2p.P2PHttpClient(host)
        host.set_stream_handler(HELLO_PROTOCOL, self._on_hello_stream)

        async def serve_http(stream: P2PStream, remote: str) -> None:
            await p2p.serve_http_stream(stream, remote, self._on_request)

        host.set_stream_handler(p2p.HTTP_PROTOCOL, serve_http)
        host.on_connected = self._connected
        host.on_disconnected = self._disconnected
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(host.run)
                slice_, self._loading = self._loading or slice_, None
                live = self._live = _Live(host, client, slice_, self._policy(slice_), tg)
                for peer in slice_.peers:
                    self._start_link(live, peer)
                self._services.peers.probe = self._probe
                addrs = ", ".join(host.listen_addrs())
                ctx.set_condition("Ready", True, "Listening", f"{host.peer_id} on {addrs}")
                await ctx.stopping.wait()
                tg.cancel_scope.cancel()
        finally:
            self._live = self._loading = None
            self._services.peers.probe = None
            for state in self._services.peers.all():
                state.set_state("disconnected")
                self._forget_models(state.peer_id)

    async def update(self, name: str, old: P2PSlice, new: P2PSlice) -> bool:
        """Peers and trust change in place: no restart of the host, no dropped links."""
        if new.listen != old.listen:
            return False
        if self._loading is not None:
            self._loading = new
            self._policy(new)
            return True
        live = self._live
        if live is None:
            return False
        live.slice = new
        live.policy = self._policy(new)
        old_peers = {p.id: p for p in old.peers}
        new_peers = {p.id: p for p in new.peers}
        for peer_id, peer in old_peers.items():
            if new_peers.get(peer_id) != peer:
                await self._stop_link(live, peer_id, forget=peer_id not in new_peers)
        for peer_id, peer in new_peers.items():
            if old_peers.get(peer_id) != peer:
                self._start_link(live, peer)
            elif (state := self._services.peers.get(peer_id)) is not None:
                state.grant = live.policy.grant(peer_id)
        for event in live.wake.values():
            event.set()  # trust or name may have changed what we offer: say hello again
        return True

    def _policy(self, slice_: P2PSlice) -> TrustPolicy:
        """The trust policy of a slice. Declared peers that it does not let use this node
        are named in one warning per start, and again when that set changes: declaring a
        peer used to be enough, and a node that silently refuses its friends is a puzzle."""
        policy = TrustPolicy(slice_.trust, slice_.peers)
        untrusted = policy.untrusted()
        if untrusted and untrusted != self._warned:
            names = ", ".join(untrusted)
            log.warning(
                "peers known but not trusted, so they may not use this node: %s "
                "(spec.trust.mode: friends). This node may still use theirs. To let one in, "
                "add `{peer: NAME}` under spec.trust.allow, or `gate peers add NAME ID --trusted`",
                names,
                extra={"peers": names},
            )
        self._warned = untrusted
        return policy

    # -- links to declared peers ---------------------------------------------------------------

    def _start_link(self, live: _Live, peer: PeerSpec) -> None:
        state = self._services.peers.upsert(peer.id, name=peer.name, addrs=peer.addrs)
        state.grant = live.policy.grant(peer.id)
        scope = anyio.CancelScope()
        live.links[peer.id] = scope
        live.wake[peer.id] = anyio.Event()
        live.task_group.start_soon(self._link, live, peer, scope)

    async def _stop_link(self, live: _Live, peer_id: str, *, forget: bool) -> None:
        scope = live.links.pop(peer_id, None)
        live.wake.pop(peer_id, None)
        if scope is not None:
            scope.cancel()
        self._forget_models(peer_id)
        if forget:
            self._services.peers.remove(peer_id)
            if live.host.is_connected(peer_id):
                await live.host.disconnect(peer_id)

    async def _link(self, live: _Live, peer: PeerSpec, scope: anyio.CancelScope) -> None:
        """Keep one peer connected: dial with backoff, say hello every HELLO_INTERVAL (the
        keepalive and the model list), and drop a link whose hellos keep failing."""
        state = self._services.peers.upsert(peer.id, name=peer.name, addrs=peer.addrs)
        backoff = 1.0
        failures = 0
        # A peer that is down is redialed forever: its failure is news once (WARNING), and
        # again only when it changes; the retries in between log at DEBUG.
        dial_error: str | None = None
        with scope:
            while True:
                if not live.host.is_connected(peer.id):
                    if not peer.addrs:
                        await self._pause(live, peer.id, 1.0)  # it dials in
                        continue
                    state.set_state("dialing")
                    try:
                        await live.host.connect(peer.id, peer.addrs)
                    except GateError as e:
                        error = str(e)
                        level = logging.DEBUG if error == dial_error else logging.WARNING
                        log.log(
                            level,
                            "cannot reach peer %s (retrying in %g s): %s",
                            peer.name,
                            backoff,
                            error,
                            extra={"peer": peer.name},
                        )
                        dial_error = error
                        state.set_state("disconnected", error=error)
                        await self._pause(live, peer.id, backoff)
                        backoff = min(30.0, backoff * 2)
                        continue
                    backoff = 1.0
                dial_error = None  # connected (by us or by its dial): the next failure is news
                try:
                    with anyio.fail_after(HELLO_TIMEOUT):
                        await self._say_hello(live, peer.id)
                    failures = 0
                except (GateError, TimeoutError, OSError) as e:
                    failures += 1
                    state.last_error = f"hello failed: {e}"
                    if failures >= HELLO_FAILURES_BEFORE_DROP:
                        log.warning("link to %s is dead; redialing", peer.name)
                        await live.host.disconnect(peer.id)
                        failures = 0
                await self._pause(live, peer.id, HELLO_INTERVAL)

    async def _probe(self, peer_id: str) -> None:
        """peers.test: connect if needed, then one hello round trip (records the RTT)."""
        live = self._live
        if live is None:
            raise GateError("the p2p component is not running")
        state = self._services.peers.get(peer_id)
        if not live.host.is_connected(peer_id):
            if state is None or not state.addrs:
                raise GateError(
                    "not connected, and the spec gives no address to dial",
                    hint="add addrs to the peer, or wait for it to dial in",
                )
            await live.host.connect(peer_id, state.addrs)
        with anyio.fail_after(HELLO_TIMEOUT):
            await self._say_hello(live, peer_id)

    async def _pause(self, live: _Live, peer_id: str, seconds: float) -> None:
        event = live.wake.get(peer_id)
        if event is None:
            await anyio.sleep(seconds)
            return
        with anyio.move_on_after(seconds):
            await event.wait()
        live.wake[peer_id] = anyio.Event()

    def _connected(self, peer_id: str) -> None:
        live = self._live
        state = self._services.peers.get(peer_id)
        if state is not None:
            state.set_state("connected")
            state.connection = "direct"
        if live is not None and peer_id in live.wake:
            live.wake[peer_id].set()
        log.info("peer connected", extra={"peer": state.name if state else peer_id})

    def _disconnected(self, peer_id: str) -> None:
        state = self._services.peers.get(peer_id)
        if state is not None:
            state.set_state("disconnected")
            state.connection = None
        self._forget_models(peer_id)
        live = self._live
        if live is not None and peer_id in live.wake:
            live.wake[peer_id].set()  # redial now, not at the next hello
        log.info("peer disconnected", extra={"peer": state.name if state else peer_id})

    # -- hello -------------------------------------------------------------------------------

    def _hello_for(self, live: _Live, peer_id: str) -> dict[str, Any]:
        """A peer that may use this node learns its name, Gate version, models and load. Any
        other peer only learns the protocol version: it has no use for the rest, which would
        tell it who runs what, which version to attack, and when the node is busy.

        That includes a peer we know but do not trust. We declared it to use its engines,
        not to be seen by it; it already knows who we are if it declared us, and a request it
        sends anyway gets a 403 that names the fix, which is all it needs."""
        if live.policy.grant(peer_id) is None:
            return {"protocol": HELLO_VERSION, "models": []}
        local = sorted(
            {m.id for e in self._services.providers.entries() if e.local for m in e.models}
        )
        return {
            "protocol": HELLO_VERSION,
            "version": __version__,
            "name": live.slice.node_name,
            "models": live.policy.offered(peer_id, local),
            "load": sum(e.load.outstanding for e in self._services.providers.entries() if e.local),
        }

    async def _say_hello(self, live: _Live, peer_id: str) -> None:
        from gate_runner.p2p import read_json, write_json

        began = time.perf_counter()
        stream = await live.host.open_stream(peer_id, HELLO_PROTOCOL)
        try:
            await write_json(stream, self._hello_for(live, peer_id))
            reply = await read_json(stream, max_size=MAX_HELLO)
        finally:
            await stream.aclose()
        state = self._services.peers.get(peer_id)
        if state is not None:
            state.last_rtt_ms = (time.perf_counter() - began) * 1000
        self._apply_hello(peer_id, reply)
        if state is not None and state.declared:
            await PeerBook(self._services.state).seen(
                peer_id=peer_id,
                name=state.name,
                remote_name=state.remote_name,
                version=state.version,
                addrs=state.addrs,
                models=state.models,
                rtt_ms=state.last_rtt_ms,
            )

    async def _on_hello_stream(self, stream: P2PStream, remote: str) -> None:
        from gate_runner.p2p import read_json, write_json

        live = self._live
        if live is None:
            return
        message = await read_json(stream, max_size=MAX_HELLO)
        self._apply_hello(remote, message)
        await write_json(stream, self._hello_for(live, remote))

    def _apply_hello(self, peer_id: str, message: dict[str, Any]) -> None:
        """Record what a peer offers us. Only peers in our spec become routing targets:
        a stranger may use this node in public mode, but we never send it our requests."""
        state = self._services.peers.get(peer_id)
        if state is None or not state.declared:
            return
        models = message.get("models")
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            log.warning("peer %s sent a hello without a model list", state.name)
            return
        state.models = tuple(models[:1000])
        state.models_stale = False
        state.remote_name = str(message.get("name") or "")[:128] or None
        state.version = str(message.get("version") or "")[:32] or None
        load = message.get("load")
        state.load = load if isinstance(load, int) else 0
        self._register_models(state.peer_id, state.name, state.remote_name, state.models)

    def _register_models(
        self, peer_id: str, name: str, remote_name: str | None, models: tuple[str, ...]
    ) -> None:
        live = self._live
        if live is None:
            return
        registry = self._services.providers
        entry = registry.get(f"@{name}")
        if entry is None:
            rank = 1_000 + next((i for i, p in enumerate(live.slice.peers) if p.id == peer_id), 999)
            remote = RemoteBackend(
                peer_id=peer_id,
                peer_name=name,
                client=live.client,
                state=self._services.peers.get(peer_id),
            )
            entry = registry.add(remote, source="peer", rank=rank, peer=(peer_id, name))
        owner = remote_name or name
        infos = [ModelInfo(id=m, created=0, owned_by=owner) for m in models]
        if isinstance(entry.backend, RemoteBackend):
            entry.backend.models = infos
        entry.set_models(infos, at=float("inf"))  # pushed by hellos, never stale
        entry.health = Health("Healthy")

    def _forget_models(self, peer_id: str) -> None:
        """Stop routing to a peer. Its state keeps the models, marked stale, until its
        next hello."""
        for entry in self._services.providers.entries():
            if entry.peer_id == peer_id:
                self._services.providers.remove(entry.name)
        state = self._services.peers.get(peer_id)
        if state is not None and state.models:
            state.models_stale = True

    # -- inbound requests ---------------------------------------------------------------------

    async def _on_request(self, request: P2PRequest, send: ResponseSender) -> None:
        live = self._live
        if live is None:
            return
        remote = request.remote_peer
        policy = live.policy
        name = policy.name_of(remote) or remote
        decision = policy.admit(remote)
        if not decision.allowed:
            log.warning(
                "refused a request from peer %s: %s",
                name,
                decision.reason,
                extra={"peer": name},
            )
            await _respond_error(send, OpenAIError.forbidden(decision.reason))
            return
        endpoint = ENDPOINT_BY_PATH.get(request.path)
        if endpoint is None or request.method != endpoint.method:
            await _respond_error(
                send,
                OpenAIError(
                    f"no route for {request.method} {request.path} over P2P",
                    status=404,
                    type="invalid_request_error",
                ),
            )
            return
        body = await request.body.read()
        access = PeerAccess(remote, name, policy)
        # A request for a model this peer may not use costs it nothing: it skips the rate
        # limiter, and the router refuses it with the same access check (403, recorded).
        model = _requested_model(body)
        limited = model is None or access.may_use(model).allowed
        if limited:
            admitted = live.limiter.acquire(remote, policy.limits.get(remote))
            if not admitted.allowed:
                log.info("rate limited peer %s: %s", name, admitted.reason, extra={"peer": name})
                await _respond_error(
                    send,
                    OpenAIError.rate_limited(
                        f"peer {name} is {admitted.reason}", retry_after=admitted.retry_after
                    ),
                )
                return
        state = self._services.peers.get(remote)
        if state is not None:
            state.requests_served += 1
            state.bytes_in += len(body)
        try:
            await self._services.router.handle(
                endpoint.op,
                _peer_scope(request, name),
                _receive_once(body),
                _AsgiToP2P(send, state).send,
                peer=access,
            )
        finally:
            if limited:
                live.limiter.release(remote)


def _requested_model(body: bytes) -> str | None:
    """The model a request body names (without any ``@peer``), read just far enough to
    check it against the trust rules; None when the body does not say, and the router
    answers 400 with the reason."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return None
    model = parsed.get("model") if isinstance(parsed, dict) else None
    if not isinstance(model, str):
        return None
    try:
        return parse_model_target(model)[0]
    except OpenAIError:
        return None


def _peer_scope(request: P2PRequest, name: str) -> dict[str, Any]:
    return {
        "type": "http",
        "method": request.method,
        "path": request.path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers],
        "client": (f"peer:{name}", 0),
    }


def _receive_once(body: bytes) -> Any:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # The stream's reset (the client left) cancels this handler; nothing else arrives.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


class _AsgiToP2P:
    """ASGI send messages from the router, as HTTP-over-P2P frames.

    A whole (non-SSE) response leaves in one write: the head waits for the body, and the
    last body message carries the end of the response. An SSE head goes out at once, so
    that the requesting node's client sees its request accepted before the first token.
    """

    def __init__(self, sender: ResponseSender, state: Any) -> None:
        self._sender = sender
        self._state = state

    async def send(self, message: MutableMapping[str, Any]) -> None:
        from gate_runner.p2p import StreamError

        try:
            await self._send(message)
        except StreamError as e:
            # The requesting node reset the stream: its client left.
            raise ClientGone(str(e)) from e

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
            sse = any(
                k.lower() == "content-type" and v.lower().startswith("text/event-stream")
                for k, v in headers
            )
            await self._sender.start(int(message["status"]), headers, flush=sse)
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk and self._state is not None:
                self._state.bytes_out += len(chunk)
            await self._sender.send(chunk, end=not message.get("more_body", False))


async def _respond_error(send: ResponseSender, error: OpenAIError) -> None:
    headers = [("content-type", "application/json"), *error.headers().items()]
    await send.respond(error.status, headers, json.dumps(error.body()).encode())
