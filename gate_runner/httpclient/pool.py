"""The connection pool to one upstream origin, and the request/response exchange over it."""

from __future__ import annotations

__all__ = ("HTTPPool",)

import ssl
from collections import deque
from collections.abc import AsyncIterable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import outcome
import trio

from gate_runner.httpclient.connection import Connection, open_connection
from gate_runner.httpclient.errors import ResponseTooLarge, UpstreamClosed
from gate_runner.httpclient.protocol import LengthBody, ResponseHead, request_lines
from gate_runner.httpclient.response import Response
from gate_runner.httpclient.watchdog import AbortSignal

Headers = Sequence[tuple[bytes | str, bytes | str]]
Body = bytes | bytearray | memoryview | AsyncIterable[bytes] | None

_FRAMING = (b"content-length", b"transfer-encoding")
# Methods whose requests carry no body by convention, so a missing one needs no
# "Content-Length: 0" (RFC 9110 says a POST or PUT without a body should still say it).
_BODILESS = ("GET", "HEAD", "DELETE", "OPTIONS")
# Request heads built and checked, by (method, target, headers): a backend sends the same
# few over and over, so only the framing is new per request. Emptied when it is this full.
_HEAD_CACHE_SIZE = 64


class HTTPPool:
    """Keep-alive HTTP/1.1 connections to one origin (``http://`` or ``https://``).

    Idle connections are reused last-in first-out, so a quiet period lets the oldest ones
    expire. There are no background tasks: idle connections are expired, and checked for a
    close by the server, when a request would take them. At ``max_connections`` in use,
    requests wait first-come first-served, and a connection that frees up is handed to the
    oldest waiter directly.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_response_bytes: int = 64 << 20,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"base_url must be http://host[:port][/prefix], not {base_url!r}")
        if url.query or url.fragment or url.username or url.password:
            raise ValueError(f"base_url cannot carry a query, fragment or user: {base_url!r}")
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._host = url.hostname
        default_port = 443 if url.scheme == "https" else 80
        self._port = url.port or default_port
        host = f"[{self._host}]" if ":" in self._host else self._host  # IPv6 literal
        self.origin = f"{url.scheme}://{host}:{self._port}"
        self._host_header = (host if self._port == default_port else f"{host}:{self._port}").encode(
            "idna"
        )
        # A base URL like http://127.0.0.1:8080/v1 prefixes every target.
        self._prefix = url.path.rstrip("/").encode("ascii")
        if url.scheme == "https" and ssl_context is None:
            ssl_context = ssl.create_default_context()
        self._ssl_context = ssl_context if url.scheme == "https" else None
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_response_bytes = max_response_bytes
        self._idle_timeout = idle_timeout

        self._heads: dict[tuple[str, str, tuple[Any, ...]], tuple[bytes, bool]] = {}
        self._idle: list[Connection] = []  # a stack: the most recently used on top
        self._waiters: deque[trio.lowlevel.Task] = deque()
        self._open = 0  # connections open or being opened; never more than _max
        self._created = 0
        self._reused = 0
        self._retried = 0
        self._closed = False

    # -- public API ------------------------------------------------------------------------

    def stream(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),
        body: Body = None,
        abort: AbortSignal | None = None,
    ) -> AbstractAsyncContextManager[Response]:
        """Send a request; ``async with`` it to get the :class:`Response` with its body unread.

        Adds ``Host`` and frames the body: ``Content-Length`` for bytes, ``Transfer-Encoding:
        chunked`` for an async iterable. Framing is the pool's alone, so ``headers`` may not
        carry either header (ValueError). When the block ends with the body read and both
        sides willing, the connection returns to the pool; otherwise (early exit, error,
        cancellation) it is closed there and then. ``abort``, when given, ends the exchange
        from another task: its waits raise UpstreamAborted (see ``watchdog``).
        """
        head, keep_alive = self._build_request(method, target, headers, body)
        return _Exchange(self, head, keep_alive, body, method, abort)

    async def request(
        self,
        method: str,
        target: str,
        *,
        headers: Headers = (),
        body: Body = None,
        abort: AbortSignal | None = None,
    ) -> tuple[Response, bytes]:
        """Send a request and read the whole response body."""
        async with self.stream(method, target, headers=headers, body=body, abort=abort) as response:
            return response, await response.read()

    async def aclose(self) -> None:
        """Close the idle connections and refuse new requests; connections in use close
        when their exchange ends, and waiting requests fail with UpstreamClosed."""
        self._closed = True
        for conn in self._idle:
            conn.close()
        self._open -= len(self._idle)
        self._idle.clear()
        while self._waiters:
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Error(self._closed_error()))
        await trio.lowlevel.checkpoint()

    async def __aenter__(self) -> HTTPPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def stats(self) -> dict[str, int]:
        """Connection counts: ``open`` (including ones being opened), ``idle``, ``in_use``,
        ``waiting``, and totals ``created``, ``reused`` and ``retried`` (stale keep-alive
        connections replaced by a fresh one, see ``_Exchange``)."""
        idle = len(self._idle)
        return {
            "open": self._open,
            "idle": idle,
            "in_use": self._open - idle,
            "waiting": len(self._waiters),
            "created": self._created,
            "reused": self._reused,
            "retried": self._retried,
        }

    def __repr__(self) -> str:
        return f"<HTTPPool {self.origin} open={self._open} idle={len(self._idle)}>"

    # -- the request head ------------------------------------------------------------------

    def _build_request(
        self, method: str, target: str, headers: Headers, body: Body
    ) -> tuple[bytes, bool]:
        """The request head, and whether the connection may be kept alive after it."""
        key = (method, target, tuple(headers))
        cached = self._heads.get(key)
        if cached is None:
            if len(self._heads) >= _HEAD_CACHE_SIZE:
                self._heads.clear()
            cached = self._heads[key] = self._head_lines(method, target, headers)
        lines, keep_alive = cached
        if isinstance(body, bytes | bytearray | memoryview):
            framing = b"content-length: %d\r\n\r\n" % len(body)
        elif body is not None:
            framing = b"transfer-encoding: chunked\r\n\r\n"
        elif method not in _BODILESS:
            framing = b"content-length: 0\r\n\r\n"
        else:
            framing = b"\r\n"
        return lines + framing, keep_alive

    def _head_lines(self, method: str, target: str, headers: Headers) -> tuple[bytes, bool]:
        lines: list[tuple[bytes, bytes]] = [(b"host", self._host_header)]
        keep_alive = True
        for name, value in headers:
            if isinstance(name, str):
                name = name.encode("ascii")
            if isinstance(value, str):
                value = value.encode("latin-1")
            key = name.lower()
            if key == b"host":
                lines[0] = (name, value)  # the caller's Host wins (e.g. a virtual host)
                continue
            if key in _FRAMING:
                raise ValueError(
                    f"invalid request {method} {target}: {name.decode('latin-1')} is set by "
                    "the pool from the body"
                )
            if key == b"connection" and b"close" in (t.strip() for t in value.lower().split(b",")):
                keep_alive = False
            lines.append((name, value))
        try:
            path = target.encode("ascii")
            if self._prefix and path.startswith(b"/"):
                path = self._prefix + path
            return request_lines(method.encode("ascii"), path, lines), keep_alive
        except ValueError as e:  # UnicodeEncodeError included
            raise ValueError(f"invalid request {method} {target}: {e}") from e

    # -- checkout and checkin --------------------------------------------------------------

    async def _checkout(self) -> Connection:
        """A connection for one exchange: an idle one if it is still good, else a new one
        (after waiting for a free slot when all are in use)."""
        if self._closed:
            raise self._closed_error()
        if self._idle:
            conn = self._take_idle()
            if conn is not None:
                self._reused += 1
                return conn
        if self._open < self._max:
            self._open += 1  # reserve the slot before the first await
        else:
            handed = await self._wait()
            if handed is not None:
                self._reused += 1
                return handed
            # None: a connection closed and its slot is now ours.
        try:
            return await self._connect()
        except BaseException:
            self._release_slot()
            raise

    def _take_idle(self) -> Connection | None:
        idle = self._idle
        now = trio.current_time()
        while idle:
            conn = idle.pop()
            if now - conn.idle_since >= self._idle_timeout:
                # Last-in first-out: every connection under this one has idled even longer.
                idle.append(conn)
                for old in idle:
                    old.close()
                self._open -= len(idle)
                idle.clear()
                return None
            if not conn.is_stale():
                return conn
            conn.close()
            self._open -= 1
        return None

    async def _wait(self) -> Connection | None:
        """Queue for a connection (or a free slot, as None); FIFO, woken by ``_checkin`` or
        ``_release_slot`` handing over directly, so a late arrival cannot jump the queue."""
        task = trio.lowlevel.current_task()
        waiters = self._waiters
        waiters.append(task)

        def abort(_: Any) -> trio.lowlevel.Abort:
            # Runs only while the task is still queued: once handed a connection it has
            # been rescheduled and cannot be cancelled out of it, so nothing leaks.
            waiters.remove(task)
            return trio.lowlevel.Abort.SUCCEEDED

        handed: Connection | None = await trio.lowlevel.wait_task_rescheduled(abort)
        return handed

    async def _connect(self) -> Connection:
        conn = await open_connection(
            self._host,
            self._port,
            connect_timeout=self._connect_timeout,
            read_timeout=self._read_timeout,
            ssl_context=self._ssl_context,
            origin=self.origin,
        )
        self._created += 1
        return conn

    def _checkin(self, conn: Connection) -> None:
        """Take back a connection whose exchange finished cleanly."""
        if self._closed:
            conn.close()
            self._open -= 1
        elif self._waiters:
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Value(conn))
        else:
            conn.idle_since = trio.current_time()
            self._idle.append(conn)

    def _release_slot(self) -> None:
        """Give up the slot of a connection that was closed (or never opened)."""
        if self._waiters and not self._closed:
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Value(None))
        else:
            self._open -= 1

    def _closed_error(self) -> UpstreamClosed:
        return UpstreamClosed(
            f"the connection pool to {self.origin} is closed",
            hint="the provider was stopped or reconfigured; send the request again",
            retryable=True,
        )


class _Exchange:
    """One request and its response: what ``HTTPPool.stream()`` returns."""

    __slots__ = (
        "_abort",
        "_body",
        "_conn",
        "_head",
        "_keep_alive",
        "_method",
        "_pool",
        "_response",
    )

    def __init__(
        self,
        pool: HTTPPool,
        head: bytes,
        keep_alive: bool,
        body: Body,
        method: str,
        abort: AbortSignal | None,
    ) -> None:
        self._pool = pool
        self._abort = abort
        self._head = head
        self._keep_alive = keep_alive
        self._body = body
        self._method = method
        self._conn: Connection | None = None
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        if self._response is not None or self._conn is not None:
            raise RuntimeError("an exchange can be entered only once")
        pool = self._pool
        conn = await pool._checkout()
        self._conn = conn
        try:
            try:
                head = await self._exchange(conn)
            except UpstreamClosed:
                # The keep-alive race: the server closed this idle connection just as we
                # took it (after the staleness peek). Nothing reached the application, so a
                # replayable (bytes) request is sent once more on a fresh connection. An
                # async iterable body was consumed by the first attempt and cannot be.
                if not conn.cycles or conn.response_started or not _replayable(self._body):
                    raise
                conn.close()
                self._conn = None
                pool._retried += 1
                conn = self._conn = await pool._connect()
                head = await self._exchange(conn)
            _check_declared_length(head, pool._max_response_bytes, conn)
        except BaseException:
            if self._conn is not None:
                self._conn.close()
            pool._release_slot()
            raise
        self._response = Response(head, conn, limit=pool._max_response_bytes)
        return self._response

    async def _exchange(self, conn: Connection) -> ResponseHead:
        conn.abort_signal = self._abort
        await conn.send_request(
            self._head,
            self._body,
            keep_alive=self._keep_alive,
            head_request=self._method == "HEAD",
        )
        return await conn.receive_head()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn = self._conn
        assert conn is not None and self._response is not None
        self._response._detach()
        self._conn = None
        conn.abort_signal = None
        # No await here: this runs the same when the caller is being cancelled.
        if exc_type is None and conn.finish():
            self._pool._checkin(conn)
        else:
            conn.close()
            self._pool._release_slot()


def _replayable(body: Body) -> bool:
    return body is None or isinstance(body, bytes | bytearray | memoryview)


def _check_declared_length(head: ResponseHead, limit: int, conn: Connection) -> None:
    """A body whose Content-Length is over the limit is refused at its head, before any of it
    is read: the caller must not have passed the head on when the count trips mid-body (a
    body that arrives in pieces after its head, as on a loaded machine)."""
    body = head.body
    if isinstance(body, LengthBody) and body.remaining > limit:
        raise ResponseTooLarge(
            f"the response from {conn.origin} is over {limit} bytes "
            f"(Content-Length: {body.remaining})",
            hint="raise max_response_bytes, or stream the body",
        )
