"""Benchmark: gate_runner.httpclient.HTTPPool against httpx.AsyncClient, both on trio.

The upstream is a tiny keep-alive HTTP/1.1 server on trio in a separate process (pinned to
its own core when there are two), answering every request with a fixed 400-byte body, so
the client's CPU is what the numbers measure. Prints req/s and client CPU per request, and
the ratio ours/httpx, for sequential requests and at concurrency 64.

    python bench/httpclient.py [--sequential 2000] [--concurrent 6400] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _gateway_servers import read_request  # noqa: E402

from gate_runner.httpclient import HTTPPool  # noqa: E402

BODY = b'{"id":"cmpl-1","object":"chat.completion","choices":[' + b"0" * 345 + b"]}"
assert len(BODY) == 400
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
REQUEST_BODY = b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":8}'
TARGET = "/v1/chat/completions"
HEADERS = [(b"content-type", b"application/json")]


# -- the upstream (runs in its own process) -----------------------------------------------


async def _serve_one(stream: trio.SocketStream) -> None:
    buf = bytearray()
    try:
        while await read_request(stream, buf) is not None:
            await stream.send_all(RESPONSE)
    except trio.BrokenResourceError:
        pass


async def _serve(port: int) -> None:
    await trio.serve_tcp(_serve_one, port, host="127.0.0.1", backlog=1024)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the upstream did not start")


# -- the clients ----------------------------------------------------------------------------

Send = Callable[[], Awaitable[None]]


async def _run(send: Send, total: int, concurrency: int) -> tuple[float, float]:
    """(requests per second, client CPU microseconds per request)."""
    per_task = total // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await send()

    cpu, wall = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(worker)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done = per_task * concurrency
    return done / wall, cpu / done * 1e6


async def _bench(port: int, sequential: int, concurrent: int, repeat: int) -> None:
    import httpx

    url = f"http://127.0.0.1:{port}"
    pool = HTTPPool(url, max_connections=100)
    # httpx keeps only 20 idle connections by default, which at c=64 would mean a new
    # connection for most requests: give it the same 100 as ours.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    client = httpx.AsyncClient(base_url=url, limits=limits)

    async def ours() -> None:
        response, body = await pool.request("POST", TARGET, headers=HEADERS, body=REQUEST_BODY)
        assert response.status == 200 and len(body) == 400

    async def theirs() -> None:
        response = await client.post(TARGET, headers=HEADERS, content=REQUEST_BODY)
        assert response.status_code == 200 and len(response.content) == 400

    clients = {"gate httpclient": ours, "httpx": theirs}
    cases = [("sequential", sequential, 1), ("concurrency 64", concurrent, 64)]
    results: dict[tuple[str, str], tuple[float, float]] = {}
    for send in clients.values():
        await _run(send, 200, 1)  # warm up: imports, first connections, caches
        await _run(send, 640, 64)
    # Interleave the clients and keep each one's best run, so a noisy moment on the
    # machine does not land on one side only.
    for _ in range(repeat):
        for case, total, concurrency in cases:
            for name, send in clients.items():
                rate, cpu = await _run(send, total, concurrency)
                best = results.get((case, name))
                if best is None or rate > best[0]:
                    results[(case, name)] = (rate, cpu)
    await pool.aclose()
    await client.aclose()

    print(f"\nupstream: trio keep-alive server, separate process; body {len(BODY)} B, POST")
    print(f"{'case':<16} {'client':<16} {'req/s':>9} {'CPU us/req':>11}")
    for case, _, _ in cases:
        for name in clients:
            rate, cpu = results[(case, name)]
            print(f"{case:<16} {name:<16} {rate:>9.0f} {cpu:>11.1f}")
        (our_rate, our_cpu), (their_rate, their_cpu) = (results[(case, n)] for n in clients)
        print(
            f"{case:<16} {'ours/httpx':<16} {our_rate / their_rate:>8.2f}x "
            f"{their_cpu / our_cpu:>9.2f}x less CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=6400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    two_cores = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    cores = sorted(os.sched_getaffinity(0)) if two_cores else []
    if args.serve:
        if cores:
            os.sched_setaffinity(0, {cores[1]})
        trio.run(_serve, args.serve)
        return
    port = _free_port()
    upstream = _start_upstream(port)
    try:
        if cores:
            os.sched_setaffinity(0, {cores[0]})
        anyio.run(_bench, port, args.sequential, args.concurrent, args.repeat, backend="trio")
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    main()
