"""HTTPPool against real servers on loopback: hypercorn + starlette, and raw trio servers that
misbehave on purpose (no answer, garbage, early close, Connection: close)."""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trio.testing

import gate_runner.httpclient
from gate_runner.errors import GateError
from gate_runner.httpclient import (
    HTTPPool,
    ResponseTooLarge,
    UpstreamClosed,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from tests.httpclient.servers import (
    AppState,
    Peer,
    keep_alive_handler,
    make_certificate,
    raw_server,
    response,
    serve_app,
)
from tests.rig import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def app_state() -> AppState:
    return AppState()


@pytest.fixture
async def app_url(app_state: AppState) -> AsyncIterator[str]:
    async with serve_app(app_state) as url:
        yield url


def test_exports_are_a_tuple_of_real_names() -> None:
    assert isinstance(gate_runner.httpclient.__all__, tuple)
    for name in gate_runner.httpclient.__all__:
        assert hasattr(gate_runner.httpclient, name), name
    assert issubclass(UpstreamError, GateError)


# -- requests and responses against hypercorn + starlette ----------------------------------


async def test_get_and_post_with_a_bytes_body(app_url: str) -> None:
    async with HTTPPool(app_url) as pool:
        response, body = await pool.request("GET", "/hello")
        assert (response.status, body) == (200, b"hello")
        assert response.http_version == b"1.1"
        assert response.header(b"Content-Type") == b"text/plain; charset=utf-8"
        assert response.header(b"x-missing") is None
        assert all(name == name.lower() for name, _ in response.headers)

        response, body = await pool.request(
            "POST", "/echo", headers=[("Content-Type", "application/json")], body=b'{"a": 1}'
        )
        seen = json.loads(body)
        assert response.status == 200
        assert seen["method"] == "POST"
        assert seen["body"] == '{"a": 1}'
        assert seen["content_length"] == "8"
        assert seen["transfer_encoding"] is None
        assert seen["content_type"] == "application/json"
        assert seen["host"] == app_url.removeprefix("http://")
        # The same head again (built once, then reused) with a body of another length.
        _, body = await pool.request(
            "POST", "/echo", headers=[("Content-Type", "application/json")], body=b"[]"
        )
        assert json.loads(body)["content_length"] == "2"
        assert pool.stats["created"] == 1 and pool.stats["reused"] == 2
    assert pool.stats["open"] == 0


async def test_a_chunked_request_body_from_an_async_iterable(app_url: str) -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one ", b"", b"two ", b"three"):
            await trio.lowlevel.checkpoint()
            yield part

    async with HTTPPool(app_url) as pool:
        response, body = await pool.request("PUT", "/echo", body=parts())
        seen = json.loads(body)
        assert response.status == 200
        assert seen["body"] == "one two three"
        assert seen["transfer_encoding"] == "chunked"
        assert seen["content_length"] is None
        # The chunked exchange ended cleanly, so the connection is reused.
        response, body = await pool.request("GET", "/hello")
        assert body == b"hello" and pool.stats["reused"] == 1


async def test_a_base_url_path_prefixes_every_target(app_url: str) -> None:
    async with HTTPPool(app_url + "/v1/") as pool:
        _, body = await pool.request("GET", "/echo")
        assert json.loads(body)["path"] == "/v1/echo"


async def test_a_streamed_response_arrives_chunk_by_chunk(
    app_url: str, app_state: AppState
) -> None:
    async with HTTPPool(app_url) as pool:
        with trio.fail_after(5):
            async with pool.stream("GET", "/sse?n=4") as response:
                assert response.status == 200
                assert response.header(b"content-type") == b"text/event-stream; charset=utf-8"
                chunks: list[bytes] = []
                async for chunk in response.aiter_raw():
                    if not chunks:
                        # The server holds its last event until we have seen the first.
                        assert app_state.sse_sent == [0]
                        app_state.release_last.set()
                    chunks.append(chunk)
        events = b"".join(chunks).split(b"\n\n")[:-1]
        assert [json.loads(e.removeprefix(b"data: ")) for e in events] == [
            {"i": i} for i in range(4)
        ]
        assert pool.stats["idle"] == 1  # read to the end: back in the pool


async def test_a_response_without_a_body_leaves_the_connection_reusable(app_url: str) -> None:
    async with HTTPPool(app_url) as pool:
        async with pool.stream("GET", "/empty") as response:
            assert response.status == 204
        async with pool.stream("HEAD", "/hello") as response:
            assert response.status == 200
            assert response.header(b"content-length") == b"5"
        _, body = await pool.request("GET", "/hello")
        assert body == b"hello"
        assert pool.stats["created"] == 1 and pool.stats["reused"] == 2


async def test_an_unread_body_that_arrived_whole_is_drained_not_a_reason_to_close() -> None:
    # The raw server sends head and body in one write, so they arrive together.
    async with raw_server(keep_alive_handler) as server, HTTPPool(server.url) as pool:
        for _ in range(3):
            async with pool.stream("GET", "/") as response:
                assert response.status == 200
        assert server.accepted == 1 and pool.stats["reused"] == 2


async def test_https_with_a_custom_ssl_context(tmp_path: Path, app_state: AppState) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    context = ssl.create_default_context(cafile=str(certfile))
    async with serve_app(app_state, certfile=certfile, keyfile=keyfile) as url:
        assert url.startswith("https://")
        async with HTTPPool(url, ssl_context=context) as pool:
            for _ in range(3):
                response, body = await pool.request("POST", "/echo", body=b"over tls")
                assert response.status == 200 and json.loads(body)["body"] == "over tls"
            assert pool.stats["created"] == 1 and pool.stats["reused"] == 2
        # Without the certificate in its trust store, the default context refuses.
        async with HTTPPool(url, connect_timeout=5) as pool:
            with pytest.raises(UpstreamConnectError, match="TLS handshake") as caught:
                await pool.request("GET", "/hello")
            assert caught.value.retryable
            assert pool.stats["open"] == 0


# -- keep-alive and connection reuse --------------------------------------------------------


async def test_fifty_sequential_requests_share_one_connection() -> None:
    async with raw_server(keep_alive_handler) as server:
        async with HTTPPool(server.url) as pool:
            for _ in range(50):
                response, body = await pool.request("POST", "/", body=b"x")
                assert (response.status, body) == (200, b"ok")
            assert server.accepted == 1
            assert pool.stats == {
                "open": 1,
                "idle": 1,
                "in_use": 0,
                "waiting": 0,
                "created": 1,
                "reused": 49,
                "retried": 0,
            }
        await server.wait_all_closed()
        assert pool.stats["open"] == 0


async def test_leaving_the_body_unread_closes_the_connection() -> None:
    async def slow_body(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await peer.send(b"5\r\nfirst\r\n")
            await peer.wait_eof()

    async with raw_server(slow_body) as server, HTTPPool(server.url) as pool:
        async with pool.stream("GET", "/") as response:
            async for chunk in response.aiter_raw():
                assert chunk == b"first"
                break
        assert pool.stats["open"] == 0
        with trio.fail_after(2):
            await server.peers[0].saw_eof.wait()
        with pytest.raises(RuntimeError, match="after its `async with` block"):
            await response.read()
        # The next request does not get the abandoned connection.
        async with pool.stream("GET", "/") as response:
            assert await response.aiter_raw().__anext__() == b"first"
        assert server.accepted == 2 and pool.stats["reused"] == 0


async def test_cancelling_mid_stream_closes_the_upstream_socket_at_once() -> None:
    async def endless(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n")
        await peer.send(b"transfer-encoding: chunked\r\n\r\n")
        async with trio.open_nursery() as nursery:

            async def tokens() -> None:
                with contextlib.suppress(trio.BrokenResourceError):  # the client reset us
                    while True:
                        await peer.send(b"c\r\ndata: token\n\r\n")
                        await trio.sleep(0.01)

            nursery.start_soon(tokens)
            await peer.wait_eof()
            nursery.cancel_scope.cancel()

    async with raw_server(endless) as server, HTTPPool(server.url) as pool:
        received = 0
        with trio.move_on_after(0.2) as scope:  # the downstream client went away
            async with pool.stream("POST", "/v1/chat/completions", body=b"{}") as response:
                async for _ in response.aiter_raw():
                    received += 1
        assert scope.cancelled_caught and received > 1
        assert pool.stats["open"] == 0
        # The engine sees the disconnect promptly: no waiting for a timeout or a GC.
        with trio.fail_after(0.5):
            await server.peers[0].saw_eof.wait()
        await server.wait_all_closed()


async def test_a_server_that_closes_idle_connections_is_detected_before_reuse() -> None:
    async def one_shot(peer: Peer) -> None:
        # Answers as if keeping the connection alive, then closes it while it is idle.
        await peer.read_request()
        await peer.send(response())
        peer.stream.socket.close()

    async with raw_server(one_shot) as server, HTTPPool(server.url) as pool:
        for _ in range(3):
            await server.wait_all_closed()
            response_, body = await pool.request("GET", "/")
            assert body == b"ok"
        # Each stale connection was seen by the peek at checkout: no request was lost or
        # replayed.
        assert server.accepted == 3
        assert pool.stats["created"] == 3 and pool.stats["retried"] == 0


async def test_the_keep_alive_race_replays_a_bytes_request_once() -> None:
    requests: list[bytes] = []

    async def closes_on_second_request(peer: Peer) -> None:
        # The race: the server gives up on the idle connection just as a request arrives,
        # so the request is read by nobody and the socket closes with no response.
        requests.append(await peer.read_request() or b"")
        await peer.send(response())
        await peer.read_request()
        peer.stream.socket.close()

    async with raw_server(closes_on_second_request) as server, HTTPPool(server.url) as pool:
        await pool.request("POST", "/", body=b"first")
        response_, body = await pool.request("POST", "/", body=b"second")
        assert body == b"ok"
        assert pool.stats["retried"] == 1 and server.accepted == 2
        assert requests[1].endswith(b"second")

        # A streamed body was consumed by the first attempt: it cannot be replayed.
        async def streamed() -> AsyncIterator[bytes]:
            yield b"third"

        with pytest.raises(UpstreamClosed) as caught:
            await pool.request("POST", "/", body=streamed())
        assert not caught.value.retryable
        assert pool.stats["retried"] == 1 and pool.stats["open"] == 0


async def test_idle_connections_expire_after_idle_timeout() -> None:
    async with raw_server(keep_alive_handler) as server:
        async with HTTPPool(server.url, idle_timeout=0.05) as pool:
            await pool.request("GET", "/")
            await trio.sleep(0.1)
            await pool.request("GET", "/")
            assert pool.stats["created"] == 2 and pool.stats["reused"] == 0
            with trio.fail_after(2):
                await server.peers[0].saw_eof.wait()  # the expired one was closed
        await server.wait_all_closed()


async def test_connection_close_from_the_server_is_honoured() -> None:
    async def closer(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(response(extra=b"connection: close\r\n"))

    async with raw_server(closer) as server, HTTPPool(server.url) as pool:
        for _ in range(3):
            response_, body = await pool.request("GET", "/")
            assert body == b"ok"
            assert pool.stats["open"] == 0  # closed by us at once, not parked as idle
        assert server.accepted == 3
        await server.wait_all_closed()


async def test_bytes_after_a_response_keep_its_connection_out_of_the_pool() -> None:
    async def says_too_much(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(response() + b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nextra")

    async with raw_server(says_too_much) as server, HTTPPool(server.url) as pool:
        for _ in range(2):
            _, body = await pool.request("GET", "/")
            assert body == b"ok"
        # Had the first connection been reused, the second request would have read "extra".
        assert server.accepted == 2 and pool.stats["reused"] == 0


async def test_connection_close_from_the_caller_is_honoured() -> None:
    async with raw_server(keep_alive_handler) as server, HTTPPool(server.url) as pool:
        for _ in range(2):
            await pool.request("GET", "/", headers=[(b"connection", b"close")])
        assert server.accepted == 2 and pool.stats["open"] == 0


# -- the connection limit --------------------------------------------------------------------


async def test_max_connections_bounds_the_sockets_and_everyone_is_served() -> None:
    async def slow(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await trio.sleep(0.02)
            await peer.send(response())

    async with raw_server(slow) as server, HTTPPool(server.url, max_connections=2) as pool:
        statuses: list[int] = []
        most_waiting = 0

        async def one() -> None:
            nonlocal most_waiting
            response_, _ = await pool.request("GET", "/")
            statuses.append(response_.status)
            most_waiting = max(most_waiting, pool.stats["waiting"])

        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for _ in range(10):
                    nursery.start_soon(one)
        assert statuses == [200] * 10
        assert server.max_open == 2 and server.accepted == 2
        assert most_waiting > 0
        assert pool.stats["created"] == 2 and pool.stats["reused"] == 8


async def test_a_cancelled_waiter_does_not_leak_its_place() -> None:
    async with raw_server(keep_alive_handler) as server:
        async with HTTPPool(server.url, max_connections=1) as pool:
            order: list[str] = []
            release = trio.Event()

            async def hold() -> None:
                async with pool.stream("GET", "/") as response:
                    await response.read()
                    await release.wait()
                order.append("holder")

            async def request(name: str) -> None:
                await pool.request("GET", "/")
                order.append(name)

            with trio.fail_after(5):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hold)
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.start_soon(request, "first")
                    await trio.testing.wait_all_tasks_blocked()
                    quitter = trio.CancelScope()
                    nursery.start_soon(_request_in, pool, quitter)
                    await trio.testing.wait_all_tasks_blocked()
                    nursery.start_soon(request, "last")
                    await trio.testing.wait_all_tasks_blocked()
                    assert pool.stats["waiting"] == 3
                    quitter.cancel()
                    await trio.testing.wait_all_tasks_blocked()
                    assert pool.stats["waiting"] == 2
                    release.set()
            assert order == ["holder", "first", "last"]
            assert pool.stats["open"] == 1 and pool.stats["created"] == 1
        assert pool.stats["open"] == 0
        await server.wait_all_closed()


async def _request_in(pool: HTTPPool, scope: trio.CancelScope) -> None:
    with scope:
        await pool.request("GET", "/")


async def test_aclose_closes_idle_connections_and_fails_waiters() -> None:
    async with raw_server(keep_alive_handler) as server:
        pool = HTTPPool(server.url, max_connections=1)
        await pool.request("GET", "/")
        failures: list[UpstreamClosed] = []

        async def waiter() -> None:
            try:
                await pool.request("GET", "/")
            except UpstreamClosed as e:
                failures.append(e)

        with trio.fail_after(5):
            async with pool.stream("GET", "/") as response:
                await response.read()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(waiter)
                    await trio.testing.wait_all_tasks_blocked()
                    await pool.aclose()
        assert len(failures) == 1 and failures[0].retryable
        assert pool.stats["open"] == 0
        await server.wait_all_closed()
        with pytest.raises(UpstreamClosed, match="pool .* is closed"):
            await pool.request("GET", "/")


async def test_informational_responses_are_skipped() -> None:
    async def continues(peer: Peer) -> None:
        while await peer.read_request() is not None:
            await peer.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            await peer.send(response(b"final"))

    async with raw_server(continues) as server, HTTPPool(server.url) as pool:
        for _ in range(2):
            response_, body = await pool.request("POST", "/", body=b"x")
            assert (response_.status, body) == (200, b"final")
        assert server.accepted == 1


# -- failures --------------------------------------------------------------------------------


async def test_connect_refused_is_a_retryable_connect_error() -> None:
    async with HTTPPool(f"http://127.0.0.1:{free_port()}") as pool:
        with pytest.raises(UpstreamConnectError, match="cannot connect") as caught:
            await pool.request("POST", "/v1/chat/completions", body=b"{}")
        assert caught.value.retryable and caught.value.hint
        assert pool.stats["open"] == 0


async def test_a_connect_that_hangs_is_a_retryable_timeout() -> None:
    # A listener that never accepts: once its accept queue is full the kernel drops our SYN,
    # so connect() hangs as it would for a host that has gone away.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
                fillers.append(filler)
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            async with HTTPPool(url, connect_timeout=0.3) as pool:
                with trio.fail_after(3), pytest.raises(UpstreamTimeout, match="connecting") as c:
                    await pool.request("GET", "/")
                assert c.value.retryable
                assert pool.stats["open"] == 0 and pool.stats["created"] == 0
        finally:
            for filler in fillers:
                filler.close()


async def test_an_unresolvable_host_is_a_connect_error() -> None:
    async with HTTPPool("http://nonexistent.invalid:80") as pool:
        with pytest.raises(UpstreamConnectError, match="cannot resolve"):
            await pool.request("GET", "/")
        assert pool.stats["open"] == 0


async def test_a_server_that_never_answers_times_out() -> None:
    async def silent(peer: Peer) -> None:
        await peer.read_request()
        await peer.wait_eof()

    async with raw_server(silent) as server:
        async with HTTPPool(server.url, read_timeout=0.2) as pool:
            with trio.fail_after(2), pytest.raises(UpstreamTimeout, match="sent nothing") as c:
                await pool.request("GET", "/")
            assert not c.value.retryable
            assert pool.stats["open"] == 0
        await server.wait_all_closed()


async def test_a_stall_mid_body_times_out() -> None:
    async def stalls(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await peer.wait_eof()

    async with raw_server(stalls) as server, HTTPPool(server.url, read_timeout=0.2) as pool:
        async with pool.stream("GET", "/") as response:
            assert await response.aiter_raw().__anext__() == b"abc"
            with trio.fail_after(2), pytest.raises(UpstreamTimeout):
                await response.read()
        assert pool.stats["open"] == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok",
    ],
    ids=["not-http", "bad-content-length", "bad-chunk-size", "length-and-chunked", "two-lengths"],
)
async def test_garbage_from_the_server_is_a_protocol_error(reply: bytes) -> None:
    async def garbage(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        await peer.wait_eof()

    async with raw_server(garbage) as server, HTTPPool(server.url) as pool:
        with trio.fail_after(2), pytest.raises(UpstreamProtocolError) as caught:
            await pool.request("GET", "/")
        assert not caught.value.retryable
        assert pool.stats["open"] == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100,
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-le",
    ],
    ids=["content-length", "chunked", "mid-head"],
)
async def test_a_server_closing_mid_response_is_upstream_closed(reply: bytes) -> None:
    async def truncates(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(reply)
        peer.stream.socket.close()

    async with raw_server(truncates) as server, HTTPPool(server.url) as pool:
        with trio.fail_after(2), pytest.raises(UpstreamClosed):
            await pool.request("GET", "/")
        assert pool.stats["open"] == 0


async def test_a_server_closing_without_a_response_is_upstream_closed() -> None:
    async def hangs_up(peer: Peer) -> None:
        await peer.read_request()
        peer.stream.socket.close()

    async with raw_server(hangs_up) as server, HTTPPool(server.url) as pool:
        with pytest.raises(UpstreamClosed, match="before sending a response") as caught:
            await pool.request("POST", "/", body=b"{}")
        # A fresh connection took the request: the engine may have acted on it.
        assert not caught.value.retryable and pool.stats["retried"] == 0


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_max_response_bytes_is_refused(chunked: bool) -> None:
    async def big(peer: Peer) -> None:
        await peer.read_request()
        if chunked:
            await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            for _ in range(10):
                await peer.send(b"400\r\n" + b"y" * 1024 + b"\r\n")
            await peer.send(b"0\r\n\r\n")
        else:
            await peer.send(response(b"y" * 10240))
        await peer.wait_eof()

    async with raw_server(big) as server:
        async with HTTPPool(server.url, max_response_bytes=4096) as pool:
            with pytest.raises(ResponseTooLarge, match="over 4096 bytes"):
                await pool.request("GET", "/")
            assert pool.stats["open"] == 0
            # At the limit exactly is fine.
        async with HTTPPool(server.url, max_response_bytes=10240) as pool:
            _, body = await pool.request("GET", "/")
            assert len(body) == 10240


async def test_a_declared_length_over_the_limit_is_refused_at_the_head() -> None:
    """The head says 10240 bytes and the body never comes: the stream is refused on entry,
    so a caller never passes on a head whose body it will then cut (router: 502, not a
    truncated 200)."""

    async def head_only(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10240\r\n\r\n")
        await peer.wait_eof()

    async with raw_server(head_only) as server:
        async with HTTPPool(server.url, max_response_bytes=4096) as pool:
            with trio.fail_after(5):
                with pytest.raises(ResponseTooLarge, match=r"Content-Length: 10240"):
                    async with pool.stream("GET", "/"):
                        pass
            assert pool.stats["open"] == 0


async def test_invalid_requests_are_refused_before_anything_is_sent() -> None:
    pool = HTTPPool("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="invalid request"):
        pool.stream("GET", "/", headers=[(b"bad header", b"x")])
    with pytest.raises(ValueError, match="invalid request"):
        pool.stream("GET", "/", headers=[(b"x-smuggled", b"a\r\ncontent-length: 0")])
    with pytest.raises(ValueError, match="set by the pool"):
        pool.stream("POST", "/", headers=[(b"Content-Length", b"9")], body=b"x")
    with pytest.raises(ValueError, match="set by the pool"):
        pool.stream("POST", "/", headers=[("transfer-encoding", "chunked")], body=b"x")
    with pytest.raises(ValueError, match="invalid request"):
        pool.stream("GET", "/caf\u00e9")
    with pytest.raises(ValueError, match="base_url"):
        HTTPPool("ftp://127.0.0.1")
    with pytest.raises(ValueError, match="max_connections"):
        HTTPPool("http://127.0.0.1", max_connections=0)
    await pool.aclose()
