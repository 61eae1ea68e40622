"""Our patches to py-libp2p (gate_runner.p2p.patches), through real hosts on loopback: the
Noise session survives cancelled writers, flow control still works with batched window
updates, and a small exchange costs one yamux frame each way."""

from __future__ import annotations

import random
import struct

import anyio
import pytest
from libp2p.io.trio import TrioTCPStream
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

from gate_runner.p2p import P2PStream, StreamError, patches
from gate_runner.p2p.frames import encode_frame, read_frame, write_frame
from tests.p2p.helpers import connected, new_host, running

pytestmark = pytest.mark.anyio

ECHO = "/test/echo/1"
SINK = "/test/sink/1"
MAX = 8 << 20


async def echo(stream: P2PStream, peer: str) -> None:
    while frame := await read_frame(stream, max_size=MAX):
        await write_frame(stream, frame)
    await write_frame(stream, b"")


async def sink(stream: P2PStream, peer: str) -> None:
    while await stream.read():
        pass


def test_apply_installs_each_patch_once() -> None:
    patched = [
        TrioTCPStream.write,
        TrioTCPStream.read,
        YamuxStream._auto_tune_and_send_window_update,
        YamuxStream.write,
        Yamux._read_data_body,
    ]
    assert all(getattr(method, "_gate_patched", False) for method in patched)
    patches.apply()  # again: nothing is wrapped twice
    assert YamuxStream.write is patched[3] and TrioTCPStream.write is patched[0]


async def test_writers_cancelled_at_any_moment_never_cut_a_noise_message() -> None:
    # Writers of large messages (so that the socket fills and writes must wait) are cancelled
    # at random moments. A message cut between its encryption and its last byte would make
    # every later message fail to decrypt, and the connection would drop.
    a, b = new_host(), new_host()
    a.set_stream_handler(SINK, sink)
    a.set_stream_handler(ECHO, echo)
    drops: list[str] = []
    b.on_disconnected = drops.append
    chunk = b"x" * (256 << 10)
    rng = random.Random(7)

    async def writer(stream: P2PStream) -> None:
        try:
            while True:
                await stream.write(chunk)
        finally:
            await stream.reset()

    async with running(a, b):
        await connected(b, a)
        for _ in range(10):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(writer, await b.open_stream(a.peer_id, SINK))
                await anyio.sleep(rng.uniform(0.001, 0.03))
                tg.cancel_scope.cancel()
        stream = await b.open_stream(a.peer_id, ECHO)
        await write_frame(stream, b"still in step")
        with anyio.fail_after(5):
            assert await read_frame(stream, max_size=MAX) == b"still in step"
        assert b.is_connected(a.peer_id) and not drops


async def test_bodies_far_larger_than_the_window_flow_both_ways() -> None:
    # 6 MiB each way on one stream: the 256 KiB window is credited back many times over.
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, echo)
    payload = bytes(range(256)) * (6 << 12)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, ECHO)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_frame, stream, payload)
                assert await read_frame(stream, max_size=MAX) == payload
            await write_frame(stream, b"")
            assert await read_frame(stream, max_size=MAX) == b""


async def test_a_small_exchange_costs_one_yamux_frame_each_way() -> None:
    # No window update per read, so on a warm stream a request and its reply are one DATA
    # frame each: one Noise message and one syscall at each end.
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, echo)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, ECHO)
        await write_frame(stream, b"warm")
        assert await read_frame(stream, max_size=MAX) == b"warm"
        frames: list[tuple[int, int]] = []  # (type, stream id) written by either end
        for conn in {_yamux(stream), _yamux_of_peer(a, b.peer_id)}:
            _count_frames(conn, frames)
        for i in range(20):
            await stream.write(encode_frame(b"request %d" % i))
            assert await read_frame(stream, max_size=MAX) == b"request %d" % i
        data_frames = [f for f in frames if f[0] == 0]
        assert len(data_frames) == 40
        assert not [f for f in frames if f[0] == 1]  # no window update at all


async def test_a_write_to_a_closed_connection_fails_as_a_stream_error() -> None:
    a, b = new_host(), new_host()
    a.set_stream_handler(SINK, sink)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, SINK)
        await a.disconnect(b.peer_id)
        with anyio.fail_after(5), pytest.raises(StreamError):
            while True:
                await stream.write(b"y" * 65536)


def _yamux(stream: P2PStream) -> Yamux:
    conn = stream._stream.muxed_conn
    assert isinstance(conn, Yamux)
    return conn


def _yamux_of_peer(host: object, peer_id: str) -> Yamux:
    network = host._host.get_network()  # type: ignore[attr-defined]
    (conn,) = [c for pid, cs in network.connections.items() if str(pid) == peer_id for c in cs]
    assert isinstance(conn.muxed_conn, Yamux)
    return conn.muxed_conn


def _count_frames(conn: Yamux, into: list[tuple[int, int]]) -> None:
    """Record (type, stream id) of each frame this connection writes, pings left out."""
    write_frame_ = conn._write_frame

    async def counting(data: bytes) -> None:
        _, kind, _, stream_id, _ = struct.unpack("!BBHII", data[:12])
        if stream_id:
            into.append((kind, stream_id))
        await write_frame_(data)

    conn._write_frame = counting  # type: ignore[method-assign]
