"""`gate requests ls`: the node's request log."""

from __future__ import annotations

__all__ = ("register",)

import argparse
import time
from typing import Any

from gate_runner.cli.command import EXIT_OK, Subparsers, add, group, node_client
from gate_runner.cli.output import emit, table


def cmd_requests(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.model:
        params["model"] = args.model
    with node_client(args) as client:
        records = client.call("requests.list", params)
    emit(
        records,
        args.output,
        lambda rows: table(
            ["TIME", "ID", "MODEL", "PROVIDER", "STATUS", "LATENCY", "TTFT", "TOKENS", "SOURCE"],
            [
                [
                    time.strftime("%H:%M:%S", time.localtime(r["startedAt"])),
                    r["id"],
                    r["model"] or "-",
                    r["provider"] or "-",
                    r["status"],
                    f"{r['latencyMs']:.1f}ms",
                    "-" if r["ttftMs"] is None else f"{r['ttftMs']:.1f}ms",
                    "-" if r["completionTokens"] is None else r["completionTokens"],
                    r["source"],
                ]
                for r in rows
            ],
        ),
    )
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate requests ls`."""
    requests = group(sub, "requests", "the request log", "requests_command")
    p = add(
        requests,
        "ls",
        cmd_requests,
        "list recent requests",
        ["gate requests ls --limit 50", "gate requests ls --model llama3 -o json"],
        (common, out),
    )
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--model", help="only requests for this model")
