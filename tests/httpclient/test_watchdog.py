"""Read timeouts kept by the run's Watchdog, and exchanges ended by an AbortSignal, against
raw trio servers on loopback. Each timeout case runs with the watchdog and without it (the
cancel-scope fallback), and must fail the same way."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from gate_runner.httpclient import (
    AbortSignal,
    HTTPPool,
    UpstreamAborted,
    UpstreamError,
    UpstreamTimeout,
    Watchdog,
)
from gate_runner.httpclient.connection import open_connection
from gate_runner.httpclient.watchdog import current_watchdog
from tests.httpclient.servers import Peer, make_certificate, raw_server, response

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def keeping_time(with_watchdog: bool) -> AsyncIterator[Watchdog | None]:
    """The watchdog running for the block (as the node runs it), or nothing."""
    if not with_watchdog:
        yield None
        return
    async with trio.open_nursery() as nursery:
        dog = Watchdog(interval=0.02)
        await nursery.start(dog.run)
        yield dog
        nursery.cancel_scope.cancel()


async def silent(peer: Peer) -> None:
    await peer.read_request()
    await peer.wait_eof()


modes = pytest.mark.parametrize("with_watchdog", [True, False], ids=["watchdog", "scope"])


@modes
async def test_a_silent_server_times_out(with_watchdog: bool) -> None:
    async with keeping_time(with_watchdog) as dog, raw_server(silent) as server:
        async with HTTPPool(server.url, read_timeout=0.2) as pool:
            began = trio.current_time()
            with trio.fail_after(2), pytest.raises(UpstreamTimeout, match="sent nothing"):
                await pool.request("GET", "/")
            assert 0.2 <= trio.current_time() - began < 1
            assert pool.stats["open"] == 0
            if dog is not None:
                assert len(dog) == 0  # nothing left registered
        with trio.fail_after(2):
            await server.peers[0].saw_eof.wait()  # the server saw the connection go


@modes
async def test_a_stall_mid_body_times_out(with_watchdog: bool) -> None:
    async def stalls(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await peer.wait_eof()

    async with keeping_time(with_watchdog), raw_server(stalls) as server:
        async with HTTPPool(server.url, read_timeout=0.2) as pool:
            async with pool.stream("GET", "/") as resp:
                assert await resp.receive_some() == b"abc"
                with trio.fail_after(2), pytest.raises(UpstreamTimeout):
                    await resp.read()
            assert pool.stats["open"] == 0


@modes
async def test_the_timeout_bounds_each_wait_not_the_whole_stream(with_watchdog: bool) -> None:
    """An engine that sends a token every 0.1 s for 0.8 s never trips a 0.3 s timeout."""

    async def slow_tokens(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(8):
            await trio.sleep(0.1)
            await peer.send(b"5\r\ntoken\r\n")
        await peer.send(b"0\r\n\r\n")
        await peer.wait_eof()

    async with keeping_time(with_watchdog), raw_server(slow_tokens) as server:
        async with HTTPPool(server.url, read_timeout=0.3) as pool:
            with trio.fail_after(5):
                _, body = await pool.request("GET", "/")
            assert body == b"token" * 8


async def test_the_watchdog_is_the_runs_own_and_only_one() -> None:
    assert current_watchdog() is None
    async with keeping_time(True) as dog:
        assert current_watchdog() is dog
        with pytest.raises(RuntimeError, match="already running"):
            await Watchdog().run()
    assert current_watchdog() is None


async def test_connections_fall_back_to_a_scope_once_the_watchdog_stops() -> None:
    async with raw_server(silent) as server, HTTPPool(server.url, read_timeout=0.2) as pool:
        async with keeping_time(True):
            pass  # the pool's connections, made after this, see no watchdog
        with trio.fail_after(2), pytest.raises(UpstreamTimeout):
            await pool.request("GET", "/")


@pytest.mark.parametrize("reason", ["timeout", "aborted"])
async def test_a_socket_ended_between_wake_up_and_read_still_says_why(reason: str) -> None:
    """The sweep (or an abort) can close a socket whose data has just woken its task: the
    read that follows fails on a closed socket, and must still report the timeout or abort,
    not a closed connection (which the pool would replay on a reused connection)."""
    async with raw_server(silent) as server:
        conn = await open_connection(
            "127.0.0.1",
            server.port,
            connect_timeout=1,
            read_timeout=5,
            ssl_context=None,
            origin=server.url,
        )
        await conn.send_request(
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", None, keep_alive=True, head_request=False
        )
        conn.end(reason)
        expected = UpstreamTimeout if reason == "timeout" else UpstreamAborted
        with trio.fail_after(1), pytest.raises(expected):
            await conn.receive_head()


# -- abort -------------------------------------------------------------------------------


@modes
async def test_abort_ends_a_wait_for_the_head_and_closes_the_connection(
    with_watchdog: bool,
) -> None:
    arrived = trio.Event()

    async def silent_once_asked(peer: Peer) -> None:
        await peer.read_request()
        arrived.set()
        await peer.wait_eof()

    async with keeping_time(with_watchdog), raw_server(silent_once_asked) as server:
        async with HTTPPool(server.url, read_timeout=60) as pool:
            signal = AbortSignal()
            failure: list[BaseException] = []

            async def request() -> None:
                try:
                    await pool.request("POST", "/v1/chat/completions", body=b"{}", abort=signal)
                except UpstreamAborted as e:
                    failure.append(e)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                with trio.fail_after(2):
                    await arrived.wait()
                signal.abort()
            (error,) = failure
            assert not isinstance(error, UpstreamError)  # no retry, no breaker failure
            assert "aborted" in str(error)
            assert pool.stats["open"] == 0 and server.accepted == 1  # not replayed
            with trio.fail_after(1):
                await server.peers[0].saw_eof.wait()  # the engine stops at once


async def test_abort_ends_a_body_mid_stream() -> None:
    async def endless(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\ntoken\r\n")
        await peer.wait_eof()

    async with keeping_time(True), raw_server(endless) as server, HTTPPool(server.url) as pool:
        signal = AbortSignal()
        async with pool.stream("POST", "/", body=b"{}", abort=signal) as resp:
            assert await resp.receive_some() == b"token"
            async with trio.open_nursery() as nursery:

                async def abort_soon() -> None:
                    await trio.sleep(0.05)
                    signal.abort()

                nursery.start_soon(abort_soon)
                with trio.fail_after(2), pytest.raises(UpstreamAborted):
                    await resp.receive_some()
        assert pool.stats["open"] == 0


async def test_an_aborted_signal_sends_nothing() -> None:
    async with raw_server(silent) as server, HTTPPool(server.url) as pool:
        signal = AbortSignal()
        signal.abort()
        with pytest.raises(UpstreamAborted):
            await pool.request("POST", "/", body=b"{}", abort=signal)
        assert server.accepted == 0 and pool.stats["open"] == 0


async def test_an_exchange_without_the_signal_is_untouched() -> None:
    """The signal reaches only the exchange it was given to: the next one on the same
    (kept-alive) connection does not inherit it."""

    async def answers(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response(b"ok"))

    async with raw_server(answers) as server, HTTPPool(server.url) as pool:
        signal = AbortSignal()
        _, body = await pool.request("POST", "/", body=b"{}", abort=signal)
        signal.abort()  # after the exchange: nothing to end
        _, again = await pool.request("POST", "/", body=b"{}")
        assert body == again == b"ok" and pool.stats["reused"] == 1


async def test_abort_reaches_an_https_exchange(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def handler(stream: trio.SocketStream) -> None:
        tls = trio.SSLStream(stream, server_ctx, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await tls.receive_some(65536)  # the request; never answered
            await tls.receive_some(65536)

    async with trio.open_nursery() as nursery:
        (listener,) = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listener.socket.getsockname()[1]
        async with HTTPPool(f"https://127.0.0.1:{port}", ssl_context=client_ctx) as pool:
            signal = AbortSignal()

            async def abort_soon() -> None:
                await trio.sleep(0.2)
                signal.abort()

            nursery.start_soon(abort_soon)
            with trio.fail_after(5), pytest.raises(UpstreamAborted):
                await pool.request("POST", "/", body=b"{}", abort=signal)
            assert pool.stats["open"] == 0
        nursery.cancel_scope.cancel()
