"""The upstream's response: status and headers at once, the body streamed on demand."""

from __future__ import annotations

__all__ = ("Response",)

from collections.abc import AsyncIterator

from gate_runner.httpclient.connection import Connection
from gate_runner.httpclient.errors import ResponseTooLarge
from gate_runner.httpclient.protocol import ResponseHead


class Response:
    """Status, headers (names lowercased) and a body read from the connection on demand.

    The body can be read only inside the ``async with pool.stream(...)`` block, once:
    ``aiter_raw()`` yields the chunks as they arrive (chunked decoding done), ``read()``
    returns them joined. Either enforces ``max_response_bytes`` and the read timeout.
    """

    __slots__ = (
        "_conn",
        "_limit",
        "_received",
        "done",
        "headers",
        "http_version",
        "reason",
        "status",
    )

    def __init__(self, head: ResponseHead, conn: Connection, *, limit: int) -> None:
        self.status = head.status
        self.reason = head.reason
        self.http_version = head.http_version
        self.headers = head.headers
        self._conn: Connection | None = conn
        self._limit = limit
        self._received = 0
        self.done = False  # the whole body has been received

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive; bursts that arrived together come as one chunk."""
        return _RawBody(self)

    async def read(self) -> bytes:
        """The rest of the body."""
        parts = []
        while chunk := await self.receive_some():
            parts.append(chunk)
        return b"".join(parts)

    async def receive_some(self) -> bytes:
        """The next chunk of the body, or b"" once it has all been received."""
        if self.done:
            return b""
        conn = self._live()
        chunk = await conn.receive_body()
        if not chunk:
            self.done = True
            return b""
        return self._count(chunk, conn)

    def receive_buffered(self) -> bytes:
        """The body bytes that arrived with the head (or since), without waiting; ``done``
        tells whether that was all of it. A small JSON answer usually is."""
        if self.done:
            return b""
        conn = self._live()
        chunk = conn.receive_buffered()
        if conn.body_done:
            self.done = True
        return self._count(chunk, conn) if chunk else b""

    def _live(self) -> Connection:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the response body was read after its `async with` block ended")
        return conn

    def _count(self, chunk: bytes, conn: Connection) -> bytes:
        self._received += len(chunk)
        if self._received > self._limit:
            raise ResponseTooLarge(
                f"the response from {conn.origin} is over {self._limit} bytes",
                hint="raise max_response_bytes, or stream the body",
            )
        return chunk

    def _detach(self) -> None:
        # Called when the block ends: the connection may now serve another request.
        self._conn = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason.decode('latin-1')}>"


class _RawBody:
    """The iterator ``aiter_raw()`` returns: a class, not an async generator, so that an
    abandoned loop leaves no generator for the garbage collector to finalize."""

    __slots__ = ("_response",)

    def __init__(self, response: Response) -> None:
        self._response = response

    def __aiter__(self) -> _RawBody:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._response.receive_some()
        if not chunk:
            raise StopAsyncIteration
        return chunk
