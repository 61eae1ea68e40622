"""Control-plane benchmarks: a call's round trip over POST /rpc and over the WebSocket, and
how fast events reach a subscriber, each as a ratio against a floor measured in the same run.

- Floor for calls: GET /healthz on the same server (hypercorn, starlette, no auth, no JSON-RPC).
- Floor for events: the rate at which the node publishes them (a subscriber that keeps up
  delivers 1.00x, with nothing dropped).

Run from the repo root: `python bench/control.py [--calls 2000]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from websockets.sync.client import connect  # noqa: E402

from tests.rig import GateNode  # noqa: E402


def timed(calls: int, one: Callable[[], object]) -> list[float]:
    for _ in range(min(50, calls)):
        one()  # warm up: connections, caches
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        one()
        samples.append(time.perf_counter() - began)
    return samples


def p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, samples: list[float], base: list[float]) -> str:
    p50, p99 = p(samples, 0.5) * 1000, p(samples, 0.99) * 1000
    ratio = statistics.median(samples) / statistics.median(base)
    return f"| {name} | {p50:.3f} | {p99:.3f} | {len(samples) / sum(samples):,.0f} | {ratio:.2f}x |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--events", type=int, default=400)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        node = GateNode(Path(tmp))
        node.start()
        try:
            base = f"http://127.0.0.1:{node.control_port}"
            auth = {"Authorization": f"Bearer {node.token}"}
            body = json.dumps({"jsonrpc": "2.0", "method": "node.status", "id": 1})
            with httpx.Client(headers=auth) as client:
                floor = timed(args.calls, lambda: client.get(f"{base}/healthz"))
                http_status = timed(args.calls, lambda: client.post(f"{base}/rpc", content=body))
                batch = json.dumps([json.loads(body)] * 10)
                http_batch = timed(
                    args.calls // 10, lambda: client.post(f"{base}/rpc", content=batch)
                )
            with connect(
                f"ws://127.0.0.1:{node.control_port}/rpc/ws", additional_headers=auth
            ) as ws:

                def ws_call() -> None:
                    ws.send(body)
                    ws.recv()

                ws_status = timed(args.calls, ws_call)
            print(f"## Calls ({args.calls} each, one at a time)\n")
            print("| path | p50 ms | p99 ms | calls/s | p50 vs floor |")
            print("|---|---|---|---|---|")
            print(row("GET /healthz (floor)", floor, floor))
            print(row("node.status, POST /rpc", http_status, floor))
            print(row("node.status, WebSocket", ws_status, floor))
            print(row("batch of 10 node.status, POST /rpc", http_batch, floor))

            # Events: spec.rejected from batches of invalid applies, read as they come.
            bad = "apiVersion: gate.hellas.ai/v1\nkind: Node\nmetadata: {name: x}\nspec: {x: 1}\n"
            call = {"jsonrpc": "2.0", "method": "spec.apply", "params": {"yaml": bad}}
            with connect(
                f"ws://127.0.0.1:{node.control_port}/rpc/ws", additional_headers=auth
            ) as ws:
                ws.send(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "method": "events.subscribe",
                            "id": 0,
                            "params": {"types": ["spec.rejected"], "queue": 10_000},
                        }
                    )
                )
                ws.recv()
                began = time.perf_counter()
                with httpx.Client(headers=auth, timeout=60) as client:
                    for first in range(0, args.events, 50):
                        client.post(
                            f"{base}/rpc",
                            json=[{**call, "id": i} for i in range(first, first + 50)],
                        )
                published = time.perf_counter() - began
                received, dropped = 0, 0
                while received + dropped < args.events:
                    event = json.loads(ws.recv(timeout=30))["params"]
                    received, dropped = received + 1, event["dropped"]
                delivered = time.perf_counter() - began
            print(f"\n## Events ({args.events} spec.rejected)\n")
            print("| | events/s | vs published |")
            print("|---|---|---|")
            publish_rate, deliver_rate = args.events / published, received / delivered
            print(f"| published by the node (floor) | {publish_rate:,.0f} | 1.00x |")
            print(
                f"| delivered to the subscriber | {deliver_rate:,.0f} "
                f"| {deliver_rate / publish_rate:.2f}x |"
            )
            print(f"\nDropped: {dropped} of {args.events}.")
        finally:
            node.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
