"""HTTP over P2P (/gate/http/1) between two real hosts on loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import pytest

from gate_runner.p2p import (
    HTTP_PROTOCOL,
    P2PHost,
    P2PHttpClient,
    P2PRequest,
    P2PStream,
    ResponseSender,
    StreamError,
    StreamReset,
    serve_http_stream,
)
from gate_runner.p2p.frames import encode_frame, read_frame, write_frame, write_json
from gate_runner.p2p.httpstream import MAX_BODY_FRAME, MAX_HEAD
from gate_runner.wire.openai import OpenAIError
from tests.p2p.helpers import connected, new_host, running, wait_until

pytestmark = pytest.mark.anyio


class Server:
    """Host A's side: counts the streams it serves and records what handlers saw."""

    def __init__(self, host: P2PHost, **options: float) -> None:
        self.streams = 0
        self.cancelled = anyio.Event()
        self.chunk_seen = anyio.Event()
        self.started = anyio.Event()
        self.requests: list[P2PRequest] = []
        self.lingered = 0
        self.options = options
        host.set_stream_handler(HTTP_PROTOCOL, self.serve)

    async def serve(self, stream: P2PStream, peer: str) -> None:
        self.streams += 1
        await serve_http_stream(stream, peer, self.app, **self.options)  # type: ignore[arg-type]

    async def app(self, request: P2PRequest, send: ResponseSender) -> None:
        self.requests.append(request)
        if request.path == "/echo":
            body = await request.body.read()
            meta = {"method": request.method, "peer": request.remote_peer, "n": len(body)}
            await send.respond(
                201,
                [("x-meta", json.dumps(meta)), ("x-dup", "1"), ("x-dup", "2")],
                body,
            )
        elif request.path == "/chunks":
            # Sends chunk i+1 only once the client has seen chunk i: the test passes only if
            # each chunk is flushed on its own, whatever the timing.
            await request.body.read()
            await send.start(200, [("content-type", "text/event-stream")])
            for i in range(5):
                await send.send(f"data: {i}\n\n".encode())
                with anyio.fail_after(5):
                    await self.chunk_seen.wait()
                self.chunk_seen = anyio.Event()
        elif request.path in ("/slow", "/slow-head"):
            await request.body.read()
            if request.path == "/slow":
                await send.start(200)
                await send.send(b"first")
            self.started.set()
            try:
                await anyio.sleep_forever()
            finally:
                self.cancelled.set()
        elif request.path == "/fail":
            raise RuntimeError("handler bug")
        elif request.path == "/refuse":
            raise OpenAIError.rate_limited("slow down", retry_after=3)
        elif request.path == "/fail-mid":
            await send.start(200)
            await send.send(b"partial")
            raise RuntimeError("handler bug mid-body")
        elif request.path == "/linger":
            await request.body.read()
            await send.respond(200, body=b"done")
            await anyio.sleep(0.3)  # work after the response, e.g. writing the request log
            self.lingered += 1
        elif request.path == "/ignore-body":
            await send.respond(204)
        elif request.path == "/held":
            # The whole response in one write, then work after it (the request log).
            await request.body.read()
            await send.start(200, [("content-type", "application/json")], flush=False)
            await send.send(b'{"ok":true}', end=True)
            await anyio.sleep(0.3)
            self.lingered += 1
        elif request.path == "/big":
            await request.body.read()
            await send.start(200)
            await send.send(b"z" * (3 * MAX_BODY_FRAME + 5))
        else:
            await send.respond(404)


@pytest.fixture
def pair() -> tuple[P2PHost, P2PHost, Server, P2PHttpClient]:
    """Host a serves /gate/http/1, b is the client. Each test runs them with ``running``."""
    a, b = new_host(), new_host()
    return a, b, Server(a), P2PHttpClient(b)


async def test_request_and_response_with_bodies(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        body = b"x" * (2 * MAX_BODY_FRAME + 17)  # more than one body frame
        async with client.request(
            a.peer_id, "POST", "/echo", [("content-type", "application/octet-stream")], body
        ) as response:
            assert response.status == 201
            assert [v for k, v in response.headers if k == "x-dup"] == ["1", "2"]
            meta = json.loads(response.header("x-meta") or "")
            assert meta == {"method": "POST", "peer": b.peer_id, "n": len(body)}
            assert await response.read() == body
        assert server.requests[0].header("Content-Type") == "application/octet-stream"


async def test_a_streamed_request_body_reaches_the_handler(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, _, client = pair

    async def parts() -> AsyncIterator[bytes]:
        for part in (b"a" * 10, b"", b"b" * (MAX_BODY_FRAME + 1)):
            yield part

    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "PUT", "/echo", body=parts()) as response:
            meta = json.loads(response.header("x-meta") or "")
            assert meta["n"] == 10 + MAX_BODY_FRAME + 1
            assert await response.read() == b"a" * 10 + b"b" * (MAX_BODY_FRAME + 1)


async def test_a_streaming_response_arrives_chunk_by_chunk(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/chunks", body=b"{}") as response:
            assert response.header("content-type") == "text/event-stream"
            chunks = []
            while chunk := await response.receive():
                chunks.append(chunk)
                server.chunk_seen.set()
        assert chunks == [f"data: {i}\n\n".encode() for i in range(5)]


async def test_sequential_requests_reuse_one_stream(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        for i in range(20):
            async with client.request(a.peer_id, "POST", "/echo", body=b"%d" % i) as response:
                assert await response.read() == b"%d" % i
        assert client.streams_opened == 1
        assert server.streams == 1
        assert client.idle_streams(a.peer_id) == 1


async def test_the_next_request_may_arrive_while_the_handler_finishes_up(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    # Once the response is complete the client may send its next request at once; that is
    # not the client leaving, and must not cancel the handler still finishing up.
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        for _ in range(3):
            async with client.request(a.peer_id, "POST", "/linger", body=b"{}") as response:
                assert await response.read() == b"done"
        async with client.request(a.peer_id, "POST", "/echo", body=b"x") as response:
            assert await response.read() == b"x"
        assert server.lingered == 3 and client.streams_opened == 1


async def test_a_held_head_leaves_with_the_body_and_end_ends_the_response(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        with anyio.fail_after(0.25):  # complete before the handler returns
            async with client.request(a.peer_id, "POST", "/held", body=b"{}") as response:
                assert response.header("content-type") == "application/json"
                assert await response.read() == b'{"ok":true}'
        assert server.lingered == 0
        async with client.request(a.peer_id, "POST", "/echo", body=b"next") as response:
            assert await response.read() == b"next"
        assert client.streams_opened == 1  # the stream was in step for the next exchange
        assert server.lingered == 1


class Recorder:
    """The stream side of a ResponseSender, keeping each write whole."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.ended = 0

    async def write(self, data: bytes) -> None:
        self.writes.append(data)

    async def read_exactly(self, n: int) -> bytes:
        raise AssertionError("a ResponseSender never reads")

    async def wait_readable(self) -> bool:
        raise AssertionError("a ResponseSender never reads")


async def test_whole_responses_take_one_write_and_streamed_ones_one_per_chunk() -> None:
    whole, events = Recorder(), Recorder()
    sender = ResponseSender(whole, on_end=lambda: setattr(whole, "ended", whole.ended + 1))
    await sender.start(200, [("content-type", "application/json")], flush=False)
    assert whole.writes == []
    await sender.send(b"body", end=True)
    head = encode_frame(b'{"status":200,"headers":[["content-type","application/json"]]}')
    assert whole.writes == [head + encode_frame(b"body") + encode_frame(b"")]
    assert whole.ended == 1
    with pytest.raises(RuntimeError):
        await sender.send(b"more")

    sender = ResponseSender(events, on_end=lambda: None)
    await sender.start(200, [("content-type", "text/event-stream")])
    await sender.send(b"data: 1\n\n")
    await sender.send(b"", end=True)
    assert len(events.writes) == 3  # the head went out at once, alone
    assert events.writes[1:] == [encode_frame(b"data: 1\n\n"), encode_frame(b"")]


async def test_concurrent_requests_use_several_streams_and_keep_a_few(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    client.max_idle_per_peer = 2

    async def one(i: int) -> None:
        async with client.request(a.peer_id, "POST", "/echo", body=b"%d" % i) as response:
            assert await response.read() == b"%d" % i

    async with running(a, b):
        await connected(b, a)
        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
        assert client.streams_opened == 6
        assert client.idle_streams(a.peer_id) == 2
        # The four closed beyond the cap end their server loops.
        await wait_until(lambda: server.streams == 6)


async def test_leaving_mid_stream_cancels_the_handler_promptly(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/slow", body=b"{}") as response:
            assert await response.receive() == b"first"
        with anyio.fail_after(2):
            await server.cancelled.wait()
        assert client.idle_streams(a.peer_id) == 0  # the reset stream is not pooled
        async with client.request(a.peer_id, "POST", "/echo", body=b"next") as response:
            assert await response.read() == b"next"


async def test_cancelling_before_the_response_head_cancels_the_handler(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        with anyio.move_on_after(10) as scope:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    async with client.request(a.peer_id, "POST", "/slow-head", body=b"{}"):
                        raise AssertionError("no head was sent")

                tg.start_soon(call)
                await server.started.wait()
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        with anyio.fail_after(2):
            await server.cancelled.wait()


async def test_a_failing_handler_gives_500_and_the_stream_is_reused(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, _, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/fail", body=b"x" * 1000) as response:
            assert response.status == 500
            error = json.loads(await response.read())["error"]
            assert error["type"] == "server_error" and "handler bug" not in error["message"]
        async with client.request(a.peer_id, "POST", "/ignore-body", body=b"y" * 5000) as r:
            assert r.status == 204 and await r.read() == b""
        async with client.request(a.peer_id, "GET", "/echo") as response:
            assert response.status == 201
        assert client.streams_opened == 1


async def test_an_openai_error_raised_by_a_handler_is_answered_as_it_is(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    """The error boundary (wire/openai.py openai_error) keeps a refusal's status, type and
    Retry-After: admission raises its 403 and 429 rather than writing them itself."""
    a, b, _, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/refuse", body=b"{}") as response:
            assert response.status == 429
            assert response.header("retry-after") == "3"
            error = json.loads(await response.read())["error"]
            assert error["type"] == "rate_limit_error" and "slow down" in error["message"]
        assert client.streams_opened == 1


async def test_a_handler_failing_mid_body_resets_the_stream(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, _, client = pair
    async with running(a, b):
        await connected(b, a)
        with pytest.raises(StreamReset):
            async with client.request(a.peer_id, "GET", "/fail-mid") as response:
                assert response.status == 200
                await response.read()


async def test_a_body_over_the_cap_gets_413() -> None:
    a, b = new_host(), new_host()
    Server(a, max_request_body=1000)
    client = P2PHttpClient(b)
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/echo", body=b"x" * 1500) as response:
            assert response.status == 413
            assert json.loads(await response.read())["error"]["type"] == "invalid_request_error"
        async with client.request(a.peer_id, "POST", "/echo", body=b"ok") as response:
            assert await response.read() == b"ok"
        assert client.streams_opened == 2  # the first stream was reset after the 413


async def test_large_response_bodies_are_split_into_capped_frames(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, _, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "GET", "/big") as response:
            sizes = []
            while chunk := await response.receive():
                sizes.append(len(chunk))
        assert sizes == [MAX_BODY_FRAME] * 3 + [5]


async def test_a_pooled_stream_closed_by_the_server_is_replaced_transparently() -> None:
    a, b = new_host(), new_host()
    server = Server(a, idle_timeout=0.2)
    client = P2PHttpClient(b)
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "POST", "/echo", body=b"1") as response:
            await response.read()
        await anyio.sleep(0.5)  # the server closes the idle stream
        async with client.request(a.peer_id, "POST", "/echo", body=b"2") as response:
            assert await response.read() == b"2"
        assert client.streams_opened == 2 and server.streams == 2


async def test_requests_to_a_disconnected_peer_fail_as_transient(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, _, client = pair
    async with running(a, b):
        await connected(b, a)
        async with client.request(a.peer_id, "GET", "/echo") as response:
            await response.read()
        await b.disconnect(a.peer_id)
        assert client.idle_streams(a.peer_id) == 1
        with pytest.raises(StreamError, match="not connected"):  # transient: reconnect
            async with client.request(a.peer_id, "GET", "/echo"):
                pass
        assert client.idle_streams(a.peer_id) == 0  # the dead pooled stream was dropped


# -- malformed input on a raw stream: the stream is reset, the host serves on ----------------


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param((MAX_HEAD + 1).to_bytes(4, "big"), id="head-length-over-cap"),
        pytest.param(b"\x00\x00\x01\x00" + b"{" * 10, id="truncated-head"),
        pytest.param(encode_frame(b"[1, 2, 3]"), id="head-not-an-object"),
        pytest.param(encode_frame(b"\xff\xfe"), id="head-not-json"),
        pytest.param(
            encode_frame(
                json.dumps({"method": "GET", "path": "/", "headers": "x" * MAX_HEAD}).encode()
            ),
            id="huge-head",
        ),
        pytest.param(encode_frame(b'{"method": "GET"}'), id="head-without-path"),
        pytest.param(
            encode_frame(b'{"method": "GET", "path": "/", "headers": [[1, 2]]}'),
            id="bad-headers",
        ),
        pytest.param(
            encode_frame(b'{"method": "POST", "path": "/echo"}')
            + (MAX_BODY_FRAME + 1).to_bytes(4, "big"),
            id="body-frame-over-cap",
        ),
    ],
)
async def test_malformed_frames_reset_the_stream(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient], wire: bytes
) -> None:
    a, b, server, client = pair
    async with running(a, b):
        await connected(b, a)
        raw = await b.open_stream(a.peer_id, HTTP_PROTOCOL)
        await raw.write(wire)
        if wire.startswith(b"\x00\x00\x01\x00"):
            await raw.close_write()  # the truncated case: end the stream inside the frame
        with anyio.fail_after(5), pytest.raises(StreamReset):
            await read_frame(raw, max_size=MAX_HEAD)
        # Another stream on the same connection is served as usual.
        async with client.request(a.peer_id, "POST", "/echo", body=b"fine") as response:
            assert await response.read() == b"fine"
        assert server.streams == 2
        assert a.connected_peers() == [b.peer_id]


async def test_a_client_that_sends_before_the_response_ends_is_cut_off(
    pair: tuple[P2PHost, P2PHost, Server, P2PHttpClient],
) -> None:
    a, b, server, _ = pair
    async with running(a, b):
        await connected(b, a)
        raw = await b.open_stream(a.peer_id, HTTP_PROTOCOL)
        await write_json(raw, {"method": "POST", "path": "/slow", "headers": []})
        await write_frame(raw, b"")
        assert await read_frame(raw, max_size=MAX_HEAD)  # the head
        assert await read_frame(raw, max_size=MAX_HEAD) == b"first"
        await write_frame(raw, b"pipelined bytes")  # not allowed mid-exchange
        with anyio.fail_after(2):
            await server.cancelled.wait()
        with anyio.fail_after(5), pytest.raises(StreamReset):
            await read_frame(raw, max_size=MAX_HEAD)
