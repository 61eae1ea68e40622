"""The hot path: one API request to a provider, with retries before the first byte,
circuit breakers, load tracking, disconnect cancellation and the request record."""

from __future__ import annotations

__all__ = ("ClientGone", "Proxy", "RequestOutcome")

import contextlib
import json
import re
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio
import trio
from anyio.abc import TaskStatus

from gate_runner.httpclient import (
    ResponseTooLarge,
    UpstreamAborted,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamTimeout,
)
from gate_runner.peers import PeerState, PeerTable
from gate_runner.providers.base import Operation, Reply, UpstreamRequest
from gate_runner.providers.registry import ProviderEntry, ProviderRegistry
from gate_runner.router.late import LateWatcher, Ticket
from gate_runner.routing import full_jitter, order_targets
from gate_runner.spec import NodeSpec, RoutingSpec
from gate_runner.state.requests import new_request_id
from gate_runner.trust import PeerAccess
from gate_runner.wire.asgi import Receive, Scope, Send
from gate_runner.wire.openai import (
    ENDPOINTS,
    NO_PROVIDER_HINT,
    RETRYABLE_STATUS,
    ChatRequest,
    CompletionRequest,
    EmbeddingsRequest,
    OpenAIError,
    error_response,
)
from gate_runner.wire.sse import StreamEnd, encode_json

_Parsed = ChatRequest | CompletionRequest | EmbeddingsRequest
# Non-streamed bodies up to this size are scanned after forwarding, for their token usage.
_USAGE_SCAN_LIMIT = 1 << 20
_USAGE_KEY = re.compile(rb'"usage"[ \t\r\n]*:[ \t\r\n]*')
_JSON = json.JSONDecoder()
LOCAL = "local"
CLIENT_CLOSED = 499  # nginx's code for "the client went away first"
# A failed attempt counts in the latency average as this slow, so the load-aware order moves
# a failing target behind the ones that answer, before its breaker even opens.
FAILURE_PENALTY = 1.0
# An offline peer is redialed at once and then with backoff; its link usually comes back
# within seconds, or not soon at all.
PEER_RETRY_AFTER = 5.0
_UNGUARDED = contextlib.nullcontext()


@dataclass(slots=True)
class RequestOutcome:
    """What the request log and metrics need to know about one request."""

    request_id: str
    op: Operation
    source: str = ""
    model: str | None = None
    provider: str | None = None
    status: int = 500
    attempts: int = 0
    stream: bool = False
    ttft: float | None = None  # seconds
    usage: dict[str, int] | None = None
    error: str | None = None
    head_sent: bool = False  # the response head has been handed to the server
    responded: bool = False  # the last byte of the response has been handed to the server
    target: str | None = None  # LOCAL, a peer id, or None (anywhere)
    node: str | None = None  # the remote node that answered, when one did


class ClientGone(Exception):
    """The client went away. Raised by a ``send`` that finds it gone (the P2P side), or
    by the router when the disconnect watcher fired; the upstream request is cancelled."""


def _upstream_error(error: Exception, provider: str) -> OpenAIError:
    if isinstance(error, OpenAIError):
        return error
    if isinstance(error, UpstreamTimeout):
        return OpenAIError.upstream_timeout(f"provider {provider} did not answer in time: {error}")
    if isinstance(error, UpstreamConnectError):
        return OpenAIError.no_provider(
            f"provider {provider} is unreachable: {error}",
            hint="check that the engine is running, or `gate providers test`",
        )
    if isinstance(error, ResponseTooLarge):
        return OpenAIError.bad_gateway(str(error), code="upstream_too_large")
    return OpenAIError.bad_gateway(f"provider {provider} failed: {error}")


def _only_cancelled(error: BaseException) -> bool:
    if isinstance(error, BaseExceptionGroup):
        return error.split(trio.Cancelled)[1] is None
    return isinstance(error, trio.Cancelled)


def _retryable(error: Exception) -> bool:
    if isinstance(error, OpenAIError):
        return error.status in RETRYABLE_STATUS
    return isinstance(error, UpstreamError) and not isinstance(error, ResponseTooLarge)


def _sniff_usage(chunk: bytes) -> dict[str, int] | None:
    """Find a usage object in SSE bytes without decoding every event: only events that
    mention usage are parsed (OpenAI sends it once, in the last chunk)."""
    found = None
    for line in chunk.split(b"\n"):
        if line.startswith(b"data: {") and b'"usage":{' in line:
            try:
                usage = json.loads(line[6:]).get("usage")
            except ValueError:
                continue
            if isinstance(usage, dict):
                found = usage
    return found


def _json_usage(body: bytes) -> dict[str, int] | None:
    """The usage object of a JSON completion, decoded on its own rather than with the whole
    body: OpenAI-compatible servers put it at the top level, last or nearly so, and no
    other key of a completion is called "usage"."""
    at = body.rfind(b'"usage"')
    key = _USAGE_KEY.match(body, at) if at >= 0 else None
    if key is None:
        return None
    try:
        usage, _ = _JSON.raw_decode(body[key.end() :].decode())
    except ValueError:
        return None
    return usage if isinstance(usage, dict) else None


class Proxy:
    """Forwards validated requests to the best provider. One per node, used by the api and
    p2p components; ``configure`` takes each accepted spec's routing, name and limits in
    place, so such edits restart nothing and drop no request."""

    def __init__(
        self,
        *,
        registry: ProviderRegistry,
        routing: RoutingSpec,
        node_name: str,
        max_body: int,
        on_start: Callable[[], None],
        on_done: Callable[[RequestOutcome, float, float], None],
        peers: PeerTable | None = None,
        self_names: frozenset[str] = frozenset(),
    ) -> None:
        self.registry = registry
        self.peers = peers
        # The names X-Target-Node may use for this node: its name, peer id, hex id, label.
        self.self_names = self_names
        self.routing = routing
        self.node_name = node_name
        self.max_body = max_body
        self.body_timeout = 30.0  # spec.limits.bodyTimeout
        self._on_start = on_start
        self._on_done = on_done  # (outcome, started wall time, latency seconds)
        self.late = LateWatcher()

    def configure(self, spec: NodeSpec) -> None:
        """Take the router's part of an accepted spec: the routing rules, the node's name, the
        request limits and the providers' circuit breakers. The controller calls it before
        each reconcile pass, so the components that use the router never set its fields."""
        self.routing = spec.routing
        self.node_name = spec.name
        self.max_body = spec.limits.max_request_body
        self.body_timeout = spec.limits.body_timeout
        breaker = spec.routing.circuit_breaker
        self.registry.set_breaker(threshold=breaker.failure_threshold, cooldown=breaker.cooldown)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The router's own task: watchers for slow non-streamed requests live here."""
        await self.late.run(task_status=task_status)

    async def handle(
        self,
        op: Operation,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        peer: PeerAccess | None = None,
    ) -> None:
        """Serve one request: ``peer`` when it came from another node over P2P."""
        started_wall = time.time()
        began = time.perf_counter()
        outcome = RequestOutcome(request_id=new_request_id(ENDPOINTS[op].id_prefix), op=op)
        client = scope.get("client")
        if client:
            # A peer's request comes as ("peer:<name>", 0).
            outcome.source = f"{client[0]}:{client[1]}" if client[1] else str(client[0])
        self._on_start()
        try:
            body = await self._read_body(receive)
            try:
                document = json.loads(body)
            except ValueError as e:
                raise OpenAIError.invalid_request(
                    f"the request body is not valid JSON: {e}",
                    hint="send a JSON object with Content-Type: application/json",
                ) from e
            parsed = ENDPOINTS[op].validate(document)
            outcome.model = parsed.model
            outcome.stream = bool(getattr(parsed, "stream", False))
            target = self._target(parsed, scope, peer)
            outcome.target = target
            if parsed.peer is not None:
                # "name@peer" goes on as plain "name", to the peer or to our own engines.
                body = json.dumps(parsed.body_for(parsed.model)).encode()
            if outcome.stream or not self.late.running:
                request = UpstreamRequest(op, parsed, body, outcome.request_id)
                await self._with_disconnect(request, outcome, receive, send, began)
            else:
                # A non-streamed answer is one write, and a task and a nursery per request
                # cost more than the rest of the forward: only one still running after a
                # short grace gets a watcher, which aborts it if the client leaves.
                with self.late.watching(receive, outcome) as ticket:
                    request = UpstreamRequest(op, parsed, body, outcome.request_id, ticket)
                    await self._forward(request, outcome, send, began, ticket)
                if ticket.gone:
                    raise ClientGone
        except OpenAIError as e:
            outcome.status = e.status
            outcome.error = e.message
            if not outcome.head_sent:
                await send_error(send, e, request_id=outcome.request_id)
        except (ClientGone, UpstreamAborted):
            outcome.status = CLIENT_CLOSED
            outcome.error = "client disconnected"
        except UpstreamError as e:
            # Failed after the head went out, on a body that is not SSE: all that is left is
            # to cut the connection, so the client sees a truncated response.
            outcome.status = 502
            outcome.error = f"provider {outcome.provider} failed mid-response: {e}"
            raise
        except BaseException as e:
            # Cancelled from outside (it may come through a nursery, wrapped in a group):
            # the P2P server cancels a peer's request when the requesting node resets the
            # stream because its client left.
            if _only_cancelled(e) and not outcome.responded:
                outcome.status = CLIENT_CLOSED
                outcome.error = "cancelled: the requester went away"
            raise
        finally:
            self._on_done(outcome, started_wall, time.perf_counter() - began)

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole request body, within spec.limits.bodyTimeout (408 past it), so that a
        client trickling its body cannot hold a connection for as long as it likes.

        A deadline costs a cancel scope, about as much as the rest of reading the request
        (DESIGN.md 13), and the body has nearly always arrived with the head: hypercorn
        queues it on a trio memory channel before the app runs, so what is queued is taken
        without waiting, and only a body still on its way is waited for under a deadline.
        """
        chunks: list[bytes] = []
        channel = getattr(receive, "__self__", None)
        if isinstance(channel, trio.MemoryReceiveChannel):
            while True:
                try:
                    message = channel.receive_nowait()
                except trio.WouldBlock:
                    break
                if self._body_part(message, chunks):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        with trio.move_on_after(self.body_timeout):
            while True:
                if self._body_part(await receive(), chunks):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
        raise OpenAIError(
            f"the request body did not arrive within {self.body_timeout:g}s",
            status=408,
            type="invalid_request_error",
            code="request_timeout",
            hint="send the whole body at once, or raise spec.limits.bodyTimeout",
        )

    def _body_part(self, message: MutableMapping[str, Any], chunks: list[bytes]) -> bool:
        """Take one ASGI receive message; True once the body is complete."""
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        chunks.append(chunk)
        if sum(map(len, chunks)) > self.max_body:
            raise OpenAIError(
                f"the request body is over {self.max_body} bytes",
                status=413,
                type="invalid_request_error",
                code="request_too_large",
                hint="raise spec.limits.maxRequestBody if such requests are expected",
            )
        return not message.get("more_body", False)

    def _target(self, parsed: _Parsed, scope: Scope, peer: PeerAccess | None) -> str | None:
        """Where this request may go: LOCAL, a peer id, or None for anywhere. The one place
        that reads the model's @peer, X-Target-Node and, for a request from another node,
        the trust rules: such a request is served by local engines only, one hop."""
        if peer is not None:
            decision = peer.may_use(parsed.model)
            if not decision.allowed:
                raise OpenAIError.forbidden(decision.reason, code="model_not_shared")
            return LOCAL
        header = None
        for name, value in scope["headers"]:
            if name == b"x-target-node":
                header = value.decode("latin-1").strip() or None
        by_model = None if parsed.peer is None else self._resolve(parsed.peer, "model")
        by_header = None if header is None else self._resolve(header, None)
        if by_model is not None and by_header is not None and by_model != by_header:
            raise OpenAIError.invalid_request(
                f"the model names node {parsed.peer!r} but X-Target-Node names {header!r}",
                param="model",
                code="conflicting_target",
                hint="name the node once: drop the @peer suffix or the X-Target-Node header",
            )
        return by_model or by_header

    def _resolve(self, ref: str, param: str | None) -> str:
        """A node reference: LOCAL for this node's own names, else a declared peer's id."""
        if ref == self.node_name or ref in self.self_names:
            return LOCAL
        peer = self.peers.find(ref) if self.peers is not None else None
        if peer is None:
            raise OpenAIError(
                f"unknown target node {ref!r}",
                status=404,
                type="invalid_request_error",
                param=param,
                code="node_not_found",
                hint="name a peer from spec.peers (by name, peer id or hex id), or drop the "
                "@peer suffix / X-Target-Node header",
            )
        return peer.peer_id

    async def _with_disconnect(
        self,
        request: UpstreamRequest,
        outcome: RequestOutcome,
        receive: Receive,
        send: Send,
        began: float,
    ) -> None:
        """Run a stream's forward while watching for the client going away: a disconnect
        cancels the forward, which closes the upstream connection so the engine stops
        generating."""
        gone = False
        failure: OpenAIError | UpstreamError | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal gone
                while (await receive())["type"] != "http.disconnect":
                    pass
                # Once the response is complete, hypercorn reports the stream closed as a
                # disconnect too; only one that comes first cuts the forward short.
                if not outcome.responded:
                    gone = True
                    nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                await self._forward(request, outcome, send, began)
            except ClientGone:
                gone = True
            except (OpenAIError, UpstreamError) as e:
                # Raised out of the nursery it would come wrapped in an ExceptionGroup.
                failure = e
            finally:
                nursery.cancel_scope.cancel()
        if gone:
            raise ClientGone
        if failure is not None:
            raise failure

    def _candidates(self, model: str, target: str | None) -> list[ProviderEntry]:
        entries = self.registry.serving(model)
        if target == LOCAL:
            entries = [e for e in entries if e.local]
        elif target is not None:
            entries = [e for e in entries if e.peer_id == target]
            if not entries:
                # A connected peer that did not offer the model is asked anyway: it knows
                # why (not shared with us, or no such model) and says so in its answer.
                entries = [e for e in self.registry.entries() if e.peer_id == target]
        if not entries:
            raise self._not_served(model, target)
        if len(entries) == 1 and (entries[0].local or self.routing.strategy != "local-only"):
            return entries  # the usual case: nothing to order
        return order_targets(
            entries,
            strategy=self.routing.strategy,
            is_local=lambda e: e.local,
            stats=lambda e: e.load,
        )

    async def _forward(
        self,
        request: UpstreamRequest,
        outcome: RequestOutcome,
        send: Send,
        began: float,
        ticket: Ticket | None = None,
    ) -> None:
        candidates = self._candidates(request.parsed.model, outcome.target)
        retry = self.routing.retry
        last_error: Exception | None = None
        last_provider = candidates[0].name
        turn = 0
        for attempt in range(1, retry.max_attempts + 1):
            entry = self._next_allowed(candidates, turn)
            if entry is None:
                break
            turn = candidates.index(entry) + 1
            if attempt > 1:
                await anyio.sleep(
                    full_jitter(
                        attempt - 1, initial=retry.initial_backoff, maximum=retry.max_backoff
                    )
                )
            outcome.attempts = attempt
            outcome.provider = last_provider = entry.name
            entry.requests += 1
            entry.load.begin()
            attempt_began = time.perf_counter()
            latency: float | None = None
            started = False
            # The ticket's abort reaches waits on the HTTP pool; others need a cancel scope.
            guard = _UNGUARDED if ticket is None or entry.backend.abortable else ticket.guard()
            try:
                with guard:
                    async with entry.backend.open(request) as reply:
                        # Time to the head, not to the end: a long stream is no slow target.
                        latency = time.perf_counter() - attempt_began
                        started = True
                        await self._relay(reply, outcome, send, began, entry.name)
                if guard is not _UNGUARDED and ticket is not None and ticket.gone:
                    raise ClientGone  # the guard caught the cancellation
                entry.breaker.success()
                return
            except (UpstreamError, OpenAIError) as e:
                if started:
                    # Past the first byte there is no retry: the client has the head.
                    entry.breaker.failure()
                    entry.errors += 1
                    raise
                if not _retryable(e):
                    entry.breaker.success()  # it answered; the request was the problem
                    raise _upstream_error(e, entry.name) from e
                entry.breaker.failure()
                entry.errors += 1
                last_error = e
                latency = FAILURE_PENALTY
            except BaseException:
                entry.breaker.release()
                raise
            finally:
                entry.load.end(latency)
        if last_error is None:
            retry_after = min(c.breaker.retry_after() for c in candidates)
            raise OpenAIError(
                f"every provider of {request.parsed.model!r} is failing; "
                f"retry in {retry_after:.0f}s",
                status=503,
                type="api_error",
                code="no_provider_available",
                retry_after=retry_after,
            )
        raise _upstream_error(last_error, last_provider) from last_error

    def _not_served(self, model: str, target: str | None) -> OpenAIError:
        """Why no provider can take the request: a peer that is offline (its models are
        known from its last hello), no provider at all, or no such model."""
        offline = self._offline_peers(model, target)
        if offline:
            names = ", ".join(p.name for p in offline)
            what = f"peer {names} is" if len(offline) == 1 else f"peers {names} are"
            return OpenAIError(
                f"{what} offline" + (f" (it offered {model!r})" if target is None else ""),
                status=503,
                type="api_error",
                code="peer_offline",
                retry_after=PEER_RETRY_AFTER,
                hint="`gate peers ls` shows the link and its last error",
            )
        if not self.registry.entries():
            return OpenAIError.no_provider(
                "no provider is configured or discovered on this node",
                hint=NO_PROVIDER_HINT,
            )
        where = "" if target is None else " on that node" if target != LOCAL else " here"
        return OpenAIError.model_not_found(
            model, hint=f"no provider serves it{where}; list models with GET /v1/models"
        )

    def _offline_peers(self, model: str, target: str | None) -> list[PeerState]:
        if self.peers is None or target == LOCAL:
            return []
        if target is not None:
            peer = self.peers.get(target)
            return [peer] if peer is not None and peer.state != "connected" else []
        return [
            p
            for p in self.peers.all()
            if p.declared and p.state != "connected" and model in p.models
        ]

    @staticmethod
    def _next_allowed(candidates: list[ProviderEntry], start: int) -> ProviderEntry | None:
        n = len(candidates)
        for i in range(n):
            entry = candidates[(start + i) % n]
            if entry.breaker.allow():
                return entry
        return None

    async def _relay(
        self, reply: Reply, outcome: RequestOutcome, send: Send, began: float, provider: str
    ) -> None:
        headers = [
            (b"content-type", reply.content_type),
            (b"x-gate-node", (reply.node or self.node_name).encode()),
            (b"x-gate-provider", (reply.provider or provider).encode()),
            (b"x-gate-attempts", b"%d" % outcome.attempts),
            (b"x-request-id", outcome.request_id.encode()),
        ]
        if reply.stream:
            headers.append((b"cache-control", b"no-cache"))
        elif reply.content_length is not None:
            headers.append((b"content-length", b"%d" % reply.content_length))
        if reply.headers:
            headers.extend(reply.headers)
        outcome.status = reply.status
        outcome.node = reply.node
        outcome.head_sent = True
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.stream:
            usage = await self._relay_stream(reply, outcome, send, began, provider)
        else:
            usage = await self._relay_whole(reply, outcome, send, began)
        if reply.failed is not None:
            outcome.status = 502
            outcome.error = f"provider {provider} failed mid-response: {reply.failed}"
        outcome.usage = reply.usage or usage

    async def _relay_stream(
        self, reply: Reply, outcome: RequestOutcome, send: Send, began: float, provider: str
    ) -> dict[str, int] | None:
        """SSE: every chunk goes out as it arrives (events that arrived together travel
        together). Usage is picked out of the bytes, never by re-encoding events."""
        usage = reply.usage
        body = reply.body
        end = StreamEnd()
        try:
            while chunk := await body.receive():
                if outcome.ttft is None:
                    outcome.ttft = time.perf_counter() - began
                if b'"usage"' in chunk:
                    usage = _sniff_usage(chunk) or usage
                end.feed(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not end.finished and reply.status == 200:
                # Framed by the connection's close, a cut looks like an end (StreamEnd).
                raise UpstreamClosed("the stream ended without a finish reason or [DONE]")
        except UpstreamError as e:
            outcome.status = 502
            outcome.error = f"provider {provider} failed mid-response: {e}"
            error = _upstream_error(e, provider)
            await send(
                {"type": "http.response.body", "body": encode_json(error.body()), "more_body": True}
            )
        outcome.responded = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return usage

    async def _relay_whole(
        self, reply: Reply, outcome: RequestOutcome, send: Send, began: float
    ) -> dict[str, int] | None:
        """A non-streamed body: one chunk of look-ahead, so that the last chunk goes out
        with more_body=False instead of an extra empty message (one write less per request).
        A failure mid-body propagates: the connection is cut, as the head is already out."""
        body = reply.body
        kept: list[bytes] = []
        kept_size = 0
        chunk = await body.receive()
        outcome.ttft = time.perf_counter() - began
        while True:
            following = await body.receive() if chunk else b""
            if reply.usage is None and kept_size <= _USAGE_SCAN_LIMIT:
                kept_size += len(chunk)
                kept.append(chunk)
            if not following:
                outcome.responded = True
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = following
        if reply.usage is not None or kept_size > _USAGE_SCAN_LIMIT or reply.status >= 300:
            return reply.usage
        return _json_usage(b"".join(kept))


async def send_error(send: Send, error: OpenAIError, *, request_id: str | None = None) -> None:
    """``error`` as an ASGI response (wire/openai.py's error_response)."""
    status, fields, body = error_response(error)
    headers = [(k.lower().encode(), v.encode()) for k, v in fields]
    headers.append((b"content-length", str(len(body)).encode()))
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
