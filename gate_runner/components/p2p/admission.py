"""An inbound request from a peer: the trust check, the model permit that comes before the
rate limiter, the rate limit, and handing the request to the router. A request from a peer
not in the spec is also noted as a pending request (at most one write a minute per peer)."""

from __future__ import annotations

__all__ = ("admit",)

import json
import logging
from typing import TYPE_CHECKING

from gate_runner.components.p2p.asgi import AsgiToP2P, peer_scope, receive_once
from gate_runner.trust import PeerAccess
from gate_runner.wire.openai import ENDPOINT_BY_PATH, OpenAIError, parse_model_target

if TYPE_CHECKING:
    from gate_runner.p2p import P2PRequest, ResponseSender
    from gate_runner.peers import PeerTable
    from gate_runner.router import Proxy
    from gate_runner.state.pending import PendingPeers
    from gate_runner.trust import RateLimiter, TrustPolicy

# The component's one logger, under the name it had before it became a package.
log = logging.getLogger("gate_runner.components.p2p")


async def admit(
    *,
    request: P2PRequest,
    send: ResponseSender,
    policy: TrustPolicy,
    limiter: RateLimiter,
    peers: PeerTable,
    router: Proxy,
    pending: PendingPeers | None = None,
) -> None:
    """Serve one request from a peer through the router, or raise the OpenAIError it is
    refused with (the P2P server's error boundary answers it: p2p/httpstream.py).
    ``pending`` notes a peer that is not in the spec; a known peer costs it nothing."""
    remote = request.remote_peer
    known = policy.name_of(remote)
    name = known or remote
    if known is None and pending is not None:
        await pending.record(peer_id=remote)
    decision = policy.admit(remote)
    if not decision.allowed:
        log.warning(
            "refused a request from peer %s: %s",
            name,
            decision.reason,
            extra={"peer": name},
        )
        raise OpenAIError.forbidden(decision.reason)
    endpoint = ENDPOINT_BY_PATH.get(request.path)
    if endpoint is None or request.method != endpoint.method:
        raise OpenAIError(
            f"no route for {request.method} {request.path} over P2P",
            status=404,
            type="invalid_request_error",
        )
    body = await request.body.read()
    access = PeerAccess(remote, name, policy)
    # A request for a model this peer may not use costs it nothing: it skips the rate
    # limiter, and the router refuses it with the same access check (403, recorded).
    model = _requested_model(body)
    limited = model is None or access.may_use(model).allowed
    if limited:
        admitted = limiter.acquire(remote, policy.limits.get(remote))
        if not admitted.allowed:
            log.info("rate limited peer %s: %s", name, admitted.reason, extra={"peer": name})
            raise OpenAIError.rate_limited(
                f"peer {name} is {admitted.reason}", retry_after=admitted.retry_after
            )
    state = peers.get(remote)
    if state is not None:
        state.requests_served += 1
        state.bytes_in += len(body)
    try:
        await router.handle(
            endpoint.op,
            peer_scope(request, name),
            receive_once(body),
            AsgiToP2P(send, state).send,
            peer=access,
        )
    finally:
        if limited:
            limiter.release(remote)


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
