"""One keep-alive HTTP/1.1 connection to an upstream: its socket, its buffer, its timeouts."""

from __future__ import annotations

__all__ = ("Connection", "open_connection")

import socket
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TypeVar

import trio

from gate_runner.httpclient.errors import (
    UpstreamAborted,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gate_runner.httpclient.protocol import Body, ProtocolError, ResponseHead, parse_head
from gate_runner.httpclient.watchdog import AbortSignal, current_watchdog

# One receive takes whatever the kernel holds, up to this much: a whole small response,
# or a burst of SSE events that the reader hands on as one chunk.
RECEIVE_SIZE = 64 * 1024
# A bytes body up to this size is copied into the same send as the request head, so a
# typical JSON request leaves in one syscall (and one TCP segment with TCP_NODELAY).
COALESCE_LIMIT = 64 * 1024

T = TypeVar("T")
_Body = bytes | bytearray | memoryview | AsyncIterable[bytes] | None


class Connection:
    """A connected socket, its receive buffer, and the state of the exchange in flight.

    Plain HTTP drives the stdlib socket directly: a send or receive is tried at once and
    only waits through trio (``wait_readable``/``wait_writable``) when the kernel would
    block. That skips the two scheduler round trips per call that ``trio.SocketStream``
    spends on checkpoints, and a cancel scope (for the timeout) is entered only for a real
    wait. HTTPS goes through ``trio.SSLStream``. Methods never close the connection on
    error: the pool decides, and it closes whatever it cannot prove clean.
    """

    __slots__ = (
        "_body",
        "_buf",
        "_ended",
        "_fd",
        "_head_request",
        "_keep_alive",
        "_request_sent",
        "_sock",
        "_tls",
        "_watchdog",
        "abort_signal",
        "cycles",
        "idle_since",
        "origin",
        "read_timeout",
        "response_started",
    )

    def __init__(
        self,
        sock: socket.socket,
        tls: trio.abc.Stream | None,
        *,
        read_timeout: float,
        origin: str,
    ) -> None:
        self._sock = sock
        self._fd = sock.fileno()  # what trio's wait_readable/wait_writable register
        self._tls = tls
        self._buf = bytearray()  # received, not yet parsed
        self._body: Body | None = None  # the response body's decoder, once its head is in
        self._head_request = False
        self._keep_alive = False  # both sides allow another exchange after this one
        self._request_sent = False
        self.read_timeout = read_timeout
        self.origin = origin
        self.cycles = 0  # completed exchanges: > 0 means this is a reused connection
        self.idle_since = 0.0  # trio clock, set by the pool when the connection goes idle
        # Whether any byte of the current response arrived. Until one has, a failure on a
        # reused connection is the stale keep-alive race, and a bytes request is replayable.
        self.response_started = False
        self.abort_signal: AbortSignal | None = None  # the exchange's, set by the pool
        self._ended = ""  # why end() closed the socket: "timeout" or "aborted"
        self._watchdog = current_watchdog()  # the run's, if one runs (read each wait: costly)

    # -- the exchange --------------------------------------------------------------------

    async def send_request(
        self, head: bytes, body: _Body, *, keep_alive: bool, head_request: bool
    ) -> None:
        """Send the request head (built by the pool) and the whole body: as is for bytes (the
        head carries its Content-Length), chunked for an async iterable (the head says so).
        ``keep_alive`` False: the request said Connection: close. ``head_request``: it was
        a HEAD, so the response has no body whatever its headers say."""
        if self.abort_signal is not None and self.abort_signal.aborted:
            raise self._aborted()  # the caller gave up already: send nothing
        self.response_started = False
        self._request_sent = False
        self._body = None
        self._keep_alive = keep_alive
        self._head_request = head_request
        if body is None:
            await self._send_all(head)
        elif isinstance(body, bytes | bytearray | memoryview):
            if len(body) <= COALESCE_LIMIT:
                await self._send_all(head + body)
            else:
                await self._send_all(head)
                await self._send_all(memoryview(body))
        else:
            await self._send_all(head)
            async for chunk in body:
                if chunk:  # an empty chunk would be the chunked encoding's terminator
                    await self._send_all(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            await self._send_all(b"0\r\n\r\n")
        self._request_sent = True

    async def receive_head(self) -> ResponseHead:
        """Wait for the response head, skipping 1xx responses."""
        buf = self._buf
        if not buf and self._tls is None:
            # The request has only just left: nothing can be here yet, so skip the read
            # that would fail and wait first.
            await self._wait_readable()
        while True:
            try:
                head = parse_head(buf, head_request=self._head_request) if buf else None
            except ProtocolError as e:
                raise self._protocol_error(e) from e
            if head is None:
                data = await self._receive()
                if not data:
                    raise UpstreamClosed(
                        f"{self.origin} closed the connection before sending a response"
                    )
                self.response_started = True
                buf += data
            elif head.status >= 200:
                self._body = head.body
                self._keep_alive = self._keep_alive and head.keep_alive
                return head

    async def receive_body(self) -> bytes:
        """The body bytes already buffered, or else the next ones to arrive; b"" at the end.

        Everything decodable from one receive is joined into one chunk, so a burst of SSE
        events that arrived together is passed on with one write downstream.
        """
        body = self._body
        if body is None:
            raise RuntimeError("receive_body() before receive_head()")
        buf = self._buf
        try:
            while not body.done:
                data = body.read(buf)
                if data:
                    return data
                if body.done:
                    break
                received = await self._receive()
                if not received:
                    body.eof()
                    if not body.done:
                        raise UpstreamClosed(
                            f"{self.origin} closed the connection before the response body ended"
                        )
                buf += received
        except ProtocolError as e:
            raise self._protocol_error(e) from e
        return b""

    def receive_buffered(self) -> bytes:
        """The body bytes already buffered, without waiting (b"" when none are)."""
        body = self._body
        if body is None:
            raise RuntimeError("receive_buffered() before receive_head()")
        if body.done:
            return b""
        try:
            return body.read(self._buf)
        except ProtocolError as e:
            raise self._protocol_error(e) from e

    @property
    def body_done(self) -> bool:
        """The response body has been received whole (or there is none)."""
        return self._body is not None and self._body.done

    def finish(self) -> bool:
        """End the exchange; True when the connection can carry another request.

        A body that already sits whole in the buffer (a short error body the caller did not
        read) is drained without I/O; anything still on the wire means an unknown state.
        """
        body = self._body
        if body is None or not self._request_sent:
            return False
        if not body.done:
            try:
                body.read(self._buf)
            except ProtocolError:
                return False
            if not body.done:
                return False
        if not self._keep_alive or self._buf:
            return False  # either side said close, or bytes after the response
        self._body = None
        self.cycles += 1
        return True

    # -- liveness --------------------------------------------------------------------------

    def is_stale(self) -> bool:
        """True when an idle connection cannot carry a request: the server closed it (EOF or
        reset) or sent something unasked (e.g. a 408). One non-blocking peek, no await."""
        try:
            self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # nothing to read: still open
        except OSError:
            return True
        return True

    def end(self, reason: str) -> None:
        """Close the socket now because of ``reason`` ("timeout" or "aborted"): a task
        waiting on it wakes, and its wait raises the matching error."""
        self._ended = reason
        self.close()

    def close(self) -> None:
        """Close the socket now, without awaiting, so it works while cancelled.

        The peer sees FIN, or RST when response bytes were left unread, at once: an engine
        streaming tokens to a client that went away stops generating.
        """
        sock = self._sock
        if sock.fileno() != -1:
            trio.lowlevel.notify_closing(self._fd)
            sock.close()

    # -- I/O -----------------------------------------------------------------------------

    async def _send_all(self, data: bytes | memoryview) -> None:
        if self._tls is not None:
            tls = self._tls
            await self._tls_call(lambda: tls.send_all(data), "sending the request")
            return
        sock = self._sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            raise self._closed_while("sending the request", e) from e
        if sent == len(data):
            return
        # The socket buffer is full (a large body, an engine slow to read): the cold path.
        view = memoryview(data)[sent:]
        with trio.move_on_after(self.read_timeout) as scope:
            while view:
                signal = self._begin_wait("sending the request")
                try:
                    await trio.lowlevel.wait_writable(self._fd)
                    sent = sock.send(view)
                except BlockingIOError:
                    continue
                except (OSError, trio.ClosedResourceError) as e:
                    raise self._ended_error(e, "sending the request") from e
                finally:
                    if signal is not None:
                        signal.done_waiting()
                view = view[sent:]
                # The timeout bounds a stall, not the whole upload: progress pushes it back.
                scope.deadline = trio.current_time() + self.read_timeout
        if scope.cancelled_caught:
            raise self._send_timeout()

    async def _tls_call(self, call: Callable[[], Awaitable[T]], doing: str) -> T:
        """A send or receive through the TLS stream, under the read timeout and the abort
        signal (HTTPS upstreams are the exception here, so a cancel scope per call)."""
        signal = self._begin_wait(doing)
        try:
            with trio.move_on_after(self.read_timeout):
                return await call()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise self._ended_error(e, doing) from e
        finally:
            if signal is not None:
                signal.done_waiting()
        raise self._read_timeout() if doing.startswith("reading") else self._send_timeout()

    async def _receive(self) -> bytes:
        if self._tls is not None:
            tls = self._tls
            return await self._tls_call(
                lambda: tls.receive_some(RECEIVE_SIZE), "reading the response"
            )
        sock = self._sock
        while True:
            try:
                return sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                pass  # nothing yet (or a spurious wake-up): wait
            except OSError as e:
                # Also the socket the watchdog or an abort closed just as data woke us.
                raise self._ended_error(e, "reading the response") from e
            await self._wait_readable()

    async def _wait_readable(self) -> None:
        """Wait until the socket has something to read, for at most ``read_timeout``.

        With the run's watchdog that is a registered deadline, not a cancel scope (which
        costs as much as the rest of a read); the watchdog or an abort closes the socket,
        and the wait raises accordingly. Without one, a cancel scope keeps the time.
        """
        signal = self._begin_wait("reading the response")
        watchdog = self._watchdog
        if watchdog is not None and not watchdog.running:
            watchdog = self._watchdog = None
        try:
            if watchdog is None:
                with trio.move_on_after(self.read_timeout):
                    await trio.lowlevel.wait_readable(self._fd)
                    return
                raise self._read_timeout()
            watchdog.watch(self, trio.current_time() + self.read_timeout)
            await trio.lowlevel.wait_readable(self._fd)
        except trio.ClosedResourceError as e:
            raise self._ended_error(e, "reading the response") from e
        finally:
            if watchdog is not None:
                watchdog.unwatch(self)
            if signal is not None:
                signal.done_waiting()

    def _begin_wait(self, doing: str) -> AbortSignal | None:
        """Before a wait: raise if the socket was already ended (by the watchdog or an abort
        while nobody waited) or the caller gave up; else tell the abort signal which
        connection to close. The caller calls ``done_waiting()`` on it after the wait."""
        if self._ended:
            raise self._ended_error(trio.ClosedResourceError(), doing)
        signal = self.abort_signal
        if signal is not None:
            if signal.aborted:
                raise self._aborted()
            signal.wait_on(self)
        return signal

    # -- errors --------------------------------------------------------------------------

    def _closed_while(self, doing: str, e: BaseException) -> UpstreamClosed:
        return UpstreamClosed(f"{self.origin} closed the connection while {doing}: {e}")

    def _ended_error(
        self, e: BaseException, doing: str
    ) -> UpstreamAborted | UpstreamTimeout | UpstreamClosed:
        """What a wait that ended with the socket closed under it raises."""
        if self._ended == "aborted":
            return self._aborted()
        if self._ended == "timeout":
            return self._read_timeout()
        return self._closed_while(doing, e)

    def _aborted(self) -> UpstreamAborted:
        return UpstreamAborted(f"the exchange with {self.origin} was aborted by its caller")

    def _read_timeout(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self.origin} sent nothing for {self.read_timeout:g} s",
            hint="the engine may be overloaded or stuck; raise read_timeout if it is just slow",
        )

    def _send_timeout(self) -> UpstreamTimeout:
        return UpstreamTimeout(
            f"{self.origin} accepted no request bytes for {self.read_timeout:g} s",
            hint="the engine is not reading its socket; check that it is alive",
        )

    def _protocol_error(self, e: ProtocolError) -> UpstreamProtocolError:
        return UpstreamProtocolError(
            f"{self.origin} sent invalid HTTP/1.1: {e}",
            hint="check that the provider's URL points at an HTTP server (not HTTPS or gRPC)",
        )


async def open_connection(
    host: str,
    port: int,
    *,
    connect_timeout: float,
    read_timeout: float,
    ssl_context: ssl.SSLContext | None,
    origin: str,
) -> Connection:
    """Resolve, connect (each address in turn) and, for HTTPS, shake hands.

    Every failure here happens before any request byte left, so each one is retryable.
    """
    with trio.move_on_after(connect_timeout):
        try:
            infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise UpstreamConnectError(
                f"cannot resolve {host!r} for {origin}: {e}",
                hint="check the host name in the provider's URL",
            ) from e
        sock: socket.socket | None = None
        failure: OSError | None = None
        # Addresses in resolver order, one at a time: upstreams are on loopback or a LAN,
        # where happy eyeballs (a task per attempt) buys nothing.
        for family, type_, proto, _, address in infos:
            candidate = socket.socket(family, type_, proto)
            try:
                candidate.setblocking(False)
                candidate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await trio.socket.from_stdlib_socket(candidate).connect(address)
            except OSError as e:
                candidate.close()
                failure = e
                continue
            except BaseException:
                candidate.close()
                raise
            sock = candidate
            break
        if sock is None:
            raise UpstreamConnectError(
                f"cannot connect to {origin}: {failure}",
                hint="check that the engine is running and listening on that address",
            ) from failure
        tls: trio.abc.Stream | None = None
        if ssl_context is not None:
            tls = trio.SSLStream(
                trio.SocketStream(trio.socket.from_stdlib_socket(sock)),
                ssl_context,
                server_hostname=host,
                https_compatible=True,
            )
            try:
                await tls.do_handshake()
            except trio.BrokenResourceError as e:
                sock.close()
                cause = e.__cause__ or e
                raise UpstreamConnectError(
                    f"TLS handshake with {origin} failed: {cause}",
                    hint="check the upstream's certificate, or the ssl_context given to the pool",
                ) from e
            except BaseException:
                sock.close()
                raise
        return Connection(sock, tls, read_timeout=read_timeout, origin=origin)
    raise UpstreamTimeout(
        f"connecting to {origin} took longer than {connect_timeout:g} s",
        hint="check that the host is reachable, or raise connect_timeout",
        retryable=True,
    )
