"""Benchmark: one P2P link between two Gate hosts on loopback, against plain TCP.

The server runs in its own process (pinned to its own core when there are two) and serves
/gate/http/1, a raw frame echo over libp2p, and the same framing over a plain TCP socket.
The client measures, for tiny request/response exchanges: plain TCP (the baseline), a warm
libp2p stream (raw frames, then /gate/http/1 with its stream pool), a new stream per request,
and a new connection per request; then bulk MB/s over one stream. Prints p50/p99 and ratios.

    python bench/p2p_link.py [--requests 1000] [--bulk-mb 64] [--dials 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gate_runner.identity import Identity  # noqa: E402
from gate_runner.p2p import (  # noqa: E402
    HTTP_PROTOCOL,
    P2PHost,
    P2PHttpClient,
    P2PRequest,
    P2PStream,
    ResponseSender,
    serve_http_stream,
)
from gate_runner.p2p.frames import ReadBuffer, encode_frame, read_frame, write_frame  # noqa: E402

ECHO = "/bench/echo/1"
REQUEST = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
REPLY = b'{"id":"cmpl-1","object":"chat.completion","choices":[]}'
CHUNK = 1024 * 1024  # bulk body frames: the /gate/http/1 cap
MAX = 4 * 1024 * 1024


class TcpFrames:
    """The frame functions' stream interface over a trio TCP stream (the baseline)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = ReadBuffer(lambda: stream.receive_some(262144))

    async def read_exactly(self, n: int) -> bytes:
        return await self.reader.read_exactly(n)

    async def write(self, data: bytes) -> None:
        await self.stream.send_all(data)


# -- the server (its own process) -----------------------------------------------------------


async def _frame_echo(stream: TcpFrames | P2PStream) -> None:
    """A request is frames up to a zero frame; "bulk N" gets N MiB back, anything else REPLY."""
    while True:
        try:
            first = await read_frame(stream, max_size=MAX)
        except Exception:
            return
        while first and await read_frame(stream, max_size=MAX):
            pass
        if first.startswith(b"bulk "):
            block = encode_frame(b"z" * CHUNK)
            for _ in range(int(first[5:])):
                await stream.write(block)
            await write_frame(stream, b"")
        else:
            await stream.write(encode_frame(REPLY) + encode_frame(b""))


async def _app(request: P2PRequest, send: ResponseSender) -> None:
    await request.body.read()
    if request.path.startswith("/bulk/"):
        await send.start(200, [("content-type", "application/octet-stream")])
        block = b"z" * CHUNK
        for _ in range(int(request.path[6:])):
            await send.send(block)
    else:
        await send.respond(200, [("content-type", "application/json")], REPLY)


async def _serve() -> None:
    host = P2PHost(seed=Identity.generate().seed, listen=["/ip4/127.0.0.1/tcp/0"])
    host.set_stream_handler(HTTP_PROTOCOL, lambda s, peer: serve_http_stream(s, peer, _app))
    host.set_stream_handler(ECHO, lambda s, peer: _frame_echo(s))

    async def tcp_handler(stream: trio.SocketStream) -> None:
        await _frame_echo(TcpFrames(stream))  # trio sets TCP_NODELAY, as libp2p's TCP does

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, tcp_handler, 0)
        tcp_port = listeners[0].socket.getsockname()[1]
        await nursery.start(host.run)
        info = {"peer_id": host.peer_id, "addrs": host.listen_addrs(), "tcp_port": tcp_port}
        print(json.dumps(info), flush=True)
        # Serve until the client closes our stdin.
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()


# -- the client -----------------------------------------------------------------------------


async def _timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def _bench(info: dict[str, Any], requests: int, bulk_mb: int, dials: int) -> None:
    host = P2PHost(seed=Identity.generate().seed, listen=["/ip4/127.0.0.1/tcp/0"])
    peer, addrs = info["peer_id"], info["addrs"]
    async with anyio.create_task_group() as tg:
        await tg.start(host.run)
        await host.connect(peer, addrs)
        tcp = TcpFrames(await trio.open_tcp_stream("127.0.0.1", info["tcp_port"]))
        raw = await host.open_stream(peer, ECHO)
        warm = P2PHttpClient(host)
        cold = P2PHttpClient(host, max_idle_per_peer=0)  # every request opens a new stream

        async def tcp_call() -> None:
            await tcp.write(encode_frame(REQUEST) + encode_frame(b""))
            assert await read_frame(tcp, max_size=MAX) == REPLY
            assert await read_frame(tcp, max_size=MAX) == b""

        async def raw_call() -> None:
            await raw.write(encode_frame(REQUEST) + encode_frame(b""))
            assert await read_frame(raw, max_size=MAX) == REPLY
            assert await read_frame(raw, max_size=MAX) == b""

        def http_call(client: P2PHttpClient) -> Callable[[], Awaitable[None]]:
            async def call() -> None:
                async with client.request(
                    peer, "POST", "/v1/chat/completions", [("content-type", "json")], REQUEST
                ) as response:
                    assert response.status == 200 and await response.read() == REPLY

            return call

        async def dial_call() -> None:
            await host.connect(peer, addrs)
            await http_call(cold)()

        cases: dict[str, Callable[[], Awaitable[None]]] = {
            "plain TCP, same framing (baseline)": tcp_call,
            "libp2p stream, raw frames, warm": raw_call,
            "/gate/http/1, warm pooled stream": http_call(warm),
            "/gate/http/1, new stream per request": http_call(cold),
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for call in cases.values():
            await _timed(call, 50)  # warm up
        # Interleaved in rounds, so a noisy moment on the machine hits every case alike.
        rounds = 10
        for _ in range(rounds):
            for name, call in cases.items():
                samples[name] += await _timed(call, max(1, requests // rounds))

        async def tcp_bulk() -> None:
            await tcp.write(encode_frame(b"bulk %d" % bulk_mb) + encode_frame(b""))
            while await read_frame(tcp, max_size=MAX):
                pass

        async def raw_bulk() -> None:
            await raw.write(encode_frame(b"bulk %d" % bulk_mb) + encode_frame(b""))
            while await read_frame(raw, max_size=MAX):
                pass

        async def http_bulk() -> None:
            async with warm.request(peer, "GET", f"/bulk/{bulk_mb}") as response:
                while await response.receive():
                    pass

        bulk = {
            "plain TCP, same framing (baseline)": tcp_bulk,
            "libp2p stream, raw frames": raw_bulk,
            "/gate/http/1 response body": http_bulk,
        }
        best: dict[str, float] = {}
        for _ in range(3):
            for name, call in bulk.items():
                (seconds,) = await _timed(call, 1)
                best[name] = max(best.get(name, 0.0), bulk_mb * 1.048576 / seconds)
        # Last: each disconnect kills the streams above.
        dial_samples = []
        for _ in range(dials):
            await host.disconnect(peer)
            dial_samples += await _timed(dial_call, 1)

        base = statistics.median(samples["plain TCP, same framing (baseline)"]) * 1000
        print(f"\nTiny request/response, sequential ({requests} each; {dials} for the dial row)")
        print(f"{'path':<46} {'p50 ms':>8} {'p99 ms':>8} {'p50 / TCP':>10}")
        rows = [*samples.items(), ("new connection + new stream + request", dial_samples)]
        for name, values in rows:
            p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
            print(f"{name:<46} {p50:>8.3f} {p99:>8.3f} {p50 / base:>9.1f}x")
        warm_p50 = _pct(samples["/gate/http/1, warm pooled stream"], 0.5)
        cold_p50 = _pct(samples["/gate/http/1, new stream per request"], 0.5)
        print(f"a new stream per request costs {cold_p50 / warm_p50:.1f}x a warm one")
        print(f"streams opened: warm client {warm.streams_opened}, cold {cold.streams_opened}")

        print(f"\nBulk download over one stream ({bulk_mb} MiB in 1 MiB frames, best of 3)")
        print(f"{'path':<46} {'MB/s':>8} {'share of TCP':>13}")
        for name, rate in best.items():
            share = rate / best["plain TCP, same framing (baseline)"]
            print(f"{name:<46} {rate:>8.1f} {share:>12.1%}")

        await tcp.stream.aclose()
        tg.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--bulk-mb", type=int, default=64)
    parser.add_argument("--dials", type=int, default=20)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    two_cores = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0)) if two_cores else []
    if args.serve:
        if cores:
            os.sched_setaffinity(0, {cores[1]})
        anyio.run(_serve, backend="trio")
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise SystemExit("the server did not start")
        if cores:
            os.sched_setaffinity(0, {cores[0]})
        anyio.run(_bench, json.loads(line), args.requests, args.bulk_mb, args.dials, backend="trio")
    finally:
        assert server.stdin is not None
        server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


if __name__ == "__main__":
    main()
