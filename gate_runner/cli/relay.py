"""`gate relay up`: run a relay from its relay.yaml, in the foreground."""

from __future__ import annotations

__all__ = ("register",)

import argparse
from pathlib import Path

from gate_runner.cli.command import Subparsers, add, group


def cmd_relay_up(args: argparse.Namespace) -> int:
    from gate_runner.cli.node import run_foreground
    from gate_runner.reconcile.relay import RELAY_KIND

    return run_foreground(Path(args.file).absolute(), RELAY_KIND, args)


def register(sub: Subparsers) -> None:
    """Add `gate relay up`."""
    relay = group(sub, "relay", "run a relay: public names for nodes", "relay_command")
    up = add(
        relay,
        "up",
        cmd_relay_up,
        "run the relay of relay.yaml in the foreground",
        ["gate relay up -f relay.yaml"],
        (),
    )
    up.add_argument("-f", "--file", required=True, help="the relay's spec file")
    up.add_argument("--log-format", choices=["auto", "text", "json"], default="auto")
    up.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
