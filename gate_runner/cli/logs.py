"""`gate logs`: the node's recent log records, followed with -f (watch.py reads them)."""

from __future__ import annotations

__all__ = ("register",)

import argparse

from gate_runner.cli.command import Subparsers, add, node_client


def cmd_logs(args: argparse.Namespace) -> int:
    from gate_runner.cli.watch import follow_logs

    with node_client(args) as client:
        return follow_logs(
            client, level=args.level, lines=args.lines, follow=args.follow, fmt=args.output
        )


def register(
    sub: Subparsers, *, common_long: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate logs`; its -f is --follow, so the spec file is --file only (``common_long``)."""
    logs = add(
        sub,
        "logs",
        cmd_logs,
        "print the node's recent log, and follow it with -f",
        ["gate logs -n 50", "gate logs -f --level warning", "gate logs -f -o json | jq .msg"],
        (common_long, out),
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    logs.add_argument(
        "-n", "--lines", type=int, default=20, metavar="N", help="recent records first (20)"
    )
    logs.add_argument(
        "--level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="least level shown (info)",
    )
