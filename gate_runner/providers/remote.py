"""The `peer` backend: another Gate node, reached over `/gate/http/1` on a warm P2P stream."""

from __future__ import annotations

__all__ = ("RemoteBackend",)

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from gate_runner.errors import TransientError
from gate_runner.httpclient import UpstreamClosed, UpstreamConnectError
from gate_runner.providers.base import Health, ModelInfo, Reply, UpstreamRequest
from gate_runner.wire.openai import ENDPOINTS, RETRYABLE_STATUS, OpenAIError

if TYPE_CHECKING:
    from gate_runner.p2p import P2PHttpClient, P2PResponse
    from gate_runner.peers import PeerState


# Headers of the peer's answer that the router sets itself, from Reply's fields or its own.
_OWN_HEADERS = frozenset(
    {"content-type", "content-length", "x-gate-node", "x-gate-provider", "x-gate-attempts"}
)


def _passed_on(headers: list[tuple[str, str]]) -> tuple[tuple[bytes, bytes], ...]:
    """The peer's Retry-After (its rate limit) and X-Gate-* headers, for our client."""
    kept = []
    for name, value in headers:
        key = name.lower()
        if key not in _OWN_HEADERS and (key == "retry-after" or key.startswith("x-gate-")):
            kept.append((key.encode("latin-1"), value.encode("latin-1")))
    return tuple(kept)


class _PeerBody:
    __slots__ = ("_errors", "_response")

    def __init__(self, response: P2PResponse, errors: tuple[type[Exception], ...]) -> None:
        self._response = response
        self._errors = errors

    async def receive(self) -> bytes:
        try:
            return await self._response.receive()
        except self._errors as e:
            raise UpstreamClosed(f"the peer's stream broke mid-response: {e}") from e


class RemoteBackend:
    kind = "peer"
    abortable = False

    def __init__(
        self,
        *,
        peer_id: str,
        peer_name: str,
        client: P2PHttpClient,
        state: PeerState | None = None,
    ) -> None:
        self.name = f"@{peer_name}"
        self._state = state  # counts requests and bytes sent to the peer
        self.peer_id = peer_id
        self.peer_name = peer_name
        self._client = client
        self.models: list[ModelInfo] = []  # from the peer's hello

    async def start(self) -> None:
        """Nothing to do: the link is the p2p component's."""

    @asynccontextmanager
    async def open(self, request: UpstreamRequest) -> AsyncIterator[Reply]:
        from gate_runner.p2p import FrameError, StreamError

        # "name@peer" arrives here as plain "name": the router rewrote the body.
        body = request.raw_body
        # The receiving node serves a peer's request with its own engines only (the p2p
        # component scopes it so), so a request travels one hop and never loops.
        headers = [("content-type", "application/json")]
        if self._state is not None:
            self._state.requests_sent += 1
            self._state.bytes_out += len(body)
        # StreamError is transient (the link broke); "host not running" is too.
        errors = (StreamError, FrameError, TransientError)
        try:
            async with self._client.request(
                self.peer_id, "POST", ENDPOINTS[request.op].path, headers, body
            ) as response:
                status = response.status
                content_type = (response.header("content-type") or "application/json").encode()
                if status in RETRYABLE_STATUS:
                    detail = (await response.read())[:500].decode("utf-8", "replace")
                    raise OpenAIError(
                        f"peer {self.peer_name} answered {status}: {detail}",
                        status=status,
                        type="api_error",
                        code="upstream_error",
                    )
                length = response.header("content-length")
                yield Reply(
                    status=status,
                    content_type=content_type,
                    stream=content_type.startswith(b"text/event-stream"),
                    body=_PeerBody(response, errors),
                    content_length=int(length) if length and length.isdigit() else None,
                    node=response.header("x-gate-node"),
                    provider=response.header("x-gate-provider"),
                    headers=_passed_on(response.headers),
                )
        except errors as e:
            raise UpstreamConnectError(f"peer {self.peer_name}: {e}") from e

    async def fetch_models(self) -> list[ModelInfo]:
        return list(self.models)

    async def check_health(self) -> Health:
        return Health("Healthy")

    async def aclose(self) -> None:
        """The client and its streams belong to the p2p component."""
