"""The `openai` backend: any OpenAI-compatible server, with bodies passed through as bytes."""

from __future__ import annotations

__all__ = ("OpenAIBackend",)

import json
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

from gate_runner.httpclient import HTTPPool, Response, UpstreamError
from gate_runner.providers.base import (
    Health,
    ModelInfo,
    OneChunk,
    Reply,
    UpstreamRequest,
    timed,
)
from gate_runner.wire.openai import ENDPOINTS, RETRYABLE_STATUS, OpenAIError


class RawBody:
    """The upstream's body, chunk by chunk, unchanged: no re-encoding of SSE events.
    ``first``: bytes of it already taken from the connection, handed out first."""

    __slots__ = ("_first", "_response")

    def __init__(self, response: Response, first: bytes = b"") -> None:
        self._response = response
        self._first = first

    async def receive(self) -> bytes:
        if self._first:
            first, self._first = self._first, b""
            return first
        return await self._response.receive_some()


class _Opening:
    """What ``OpenAIBackend.open`` returns: the exchange as an async context manager, by
    hand rather than with @asynccontextmanager, whose generator costs the hot path."""

    __slots__ = ("_backend", "_exchange", "_request")

    def __init__(self, backend: OpenAIBackend, request: UpstreamRequest) -> None:
        self._backend = backend
        self._request = request
        self._exchange: AbstractAsyncContextManager[Response] | None = None

    async def __aenter__(self) -> Reply:
        backend, request = self._backend, self._request
        exchange = self._exchange = backend._pool.stream(
            "POST",
            ENDPOINTS[request.op].upstream_path,
            headers=backend._headers,
            body=request.raw_body,
            abort=request.abort,
        )
        response = await exchange.__aenter__()
        try:
            return await backend._reply(response)
        except BaseException as e:
            await exchange.__aexit__(type(e), e, e.__traceback__)
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._exchange is not None
        await self._exchange.__aexit__(exc_type, exc, tb)


class OpenAIBackend:
    kind = "openai"
    abortable = True

    def __init__(
        self,
        *,
        name: str,
        url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_response_bytes: int = 64 << 20,
    ) -> None:
        self.name = name
        self.url = url
        self._pool = HTTPPool(url, read_timeout=timeout, max_response_bytes=max_response_bytes)
        self._headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        self._get_headers: list[tuple[bytes, bytes]] = []
        if api_key:
            auth = (b"authorization", b"Bearer " + api_key.encode())
            self._headers.append(auth)
            self._get_headers.append(auth)

    async def start(self) -> None:
        """Nothing to do: the engine runs in its own process."""

    def open(self, request: UpstreamRequest) -> AbstractAsyncContextManager[Reply]:
        return _Opening(self, request)

    async def _reply(self, response: Response) -> Reply:
        status = response.status
        if status in RETRYABLE_STATUS or status in (401, 403):
            detail = (await response.read())[:500].decode("utf-8", "replace")
            if status in (401, 403):
                raise OpenAIError.bad_gateway(
                    f"provider {self.name} refused Gate's credentials ({status}): {detail}",
                    code="upstream_auth_failed",
                    hint="check the provider's apiKeyEnv",
                )
            raise OpenAIError(
                f"provider {self.name} answered {status}: {detail}",
                status=status,
                type="api_error",
                code="upstream_error",
            )
        content_type = response.header(b"content-type") or b"application/json"
        length = response.header(b"content-length")
        stream = content_type.startswith(b"text/event-stream")
        # A JSON answer usually came whole with its head: hand it on without more reads.
        first = b"" if stream else response.receive_buffered()
        # A hosted API's 429 says when to come back; the client should hear it.
        retry_after = response.header(b"retry-after") if status == 429 else None
        return Reply(
            status=status,
            content_type=content_type,
            stream=stream,
            body=OneChunk(first) if response.done else RawBody(response, first),
            content_length=int(length) if length and length.isdigit() else None,
            headers=((b"retry-after", retry_after),) if retry_after else (),
        )

    async def _get_json(self, path: str) -> Any:
        response, body = await self._pool.request("GET", path, headers=self._get_headers)
        if response.status != 200:
            raise UpstreamError(f"GET {self.url}{path} answered {response.status}")
        try:
            return json.loads(body)
        except ValueError as e:
            raise UpstreamError(f"GET {self.url}{path} did not answer JSON") from e

    async def fetch_models(self) -> list[ModelInfo]:
        listing = await self._get_json("/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not isinstance(data, list):
            raise UpstreamError(f"GET {self.url}/models has no data list")
        return [
            ModelInfo(
                id=str(m["id"]),
                created=int(m.get("created") or 0),
                owned_by=str(m.get("owned_by") or self.name),
            )
            for m in data
            if isinstance(m, dict) and "id" in m
        ]

    async def check_health(self) -> Health:
        # Many OpenAI-compatible servers (llama.cpp's among them) have no /health:
        # listing models is the cheapest call they all answer.
        async def probe() -> str | None:
            await self._get_json("/models")
            return None

        return await timed(probe)

    async def aclose(self) -> None:
        await self._pool.aclose()
