"""`gate peers ls|add|rm|test`: the peers and their links both ways; add and rm change the
spec through spec.apply."""

from __future__ import annotations

__all__ = ("register",)

import argparse
from typing import Any

from gate_runner.cli.command import EXIT_OK, Subparsers, UsageError, add, group, node_client
from gate_runner.cli.output import emit, render_peers
from gate_runner.cli.spec import print_apply


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _peer_params(args: argparse.Namespace) -> dict[str, Any]:
    """peers.add's params. Knowing a peer and trusting it are separate choices (DESIGN.md
    section 2): what it may use is said only together with --trusted."""
    params: dict[str, Any] = {"name": args.name, "id": args.id}
    if args.addr:
        params["addrs"] = args.addr
    scoped = [
        flag
        for flag, value in (
            ("--models", args.models),
            ("--rpm", args.rpm),
            ("--concurrent", args.concurrent),
        )
        if value is not None
    ]
    if scoped and not args.trusted:
        raise UsageError(
            f"{', '.join(scoped)} say what {args.name} may use of this node, but it is not "
            "trusted to use it",
            hint="add --trusted, or leave them out to only know the peer (use what it offers)",
        )
    if not args.trusted:
        return params
    params["trusted"] = True
    if args.models is not None:
        params["models"] = [g.strip() for item in args.models for g in item.split(",") if g.strip()]
        if not params["models"]:
            raise UsageError("--models needs at least one glob, e.g. --models 'llama3*,qwen*'")
    limit = {}
    if args.rpm is not None:
        limit["requestsPerMinute"] = args.rpm
    if args.concurrent is not None:
        limit["concurrent"] = args.concurrent
    if limit:
        params["rateLimit"] = limit
    return params


def cmd_peers(args: argparse.Namespace) -> int:
    command = args.peers_command
    params = _peer_params(args) if command == "add" else None  # usage errors before the node
    with node_client(args) as client:
        if command == "ls":
            emit(client.call("peers.list"), args.output, render_peers)
            return EXIT_OK
        if command == "test":
            result = client.call("peers.test", {"name": args.name})
            emit(result, args.output, lambda p: render_peers([p]))
            return EXIT_OK
        if params is not None:
            result = client.call("peers.add", params)
        else:
            result = client.call("peers.rm", {"name": args.name})
    print_apply(result, verb="applied", fmt=args.output)
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate peers ls`, `add`, `rm` and `test`."""
    peers = group(sub, "peers", "list, add, remove or test peers", "peers_command")
    add(
        peers,
        "ls",
        cmd_peers,
        "peers and their links both ways: what they offer me, what they may use of mine",
        ["gate peers ls", "gate peers ls -o json | jq '.[] | {name, trusted, sharedModels}'"],
        (common, out),
    )
    p = add(
        peers,
        "add",
        cmd_peers,
        "add a peer to the spec (through spec.apply; keeps the file's comments). Without "
        "--trusted you may use what it offers; with it, it may also use this node",
        [
            "gate peers add bob 12D3KooW... --addr /ip4/203.0.113.7/tcp/41145",
            "gate peers add bob 12D3KooW... --trusted                 # bob may use all my models",
            "gate peers add bob 12D3KooW... --trusted --models 'llama3*,qwen*' --rpm 60 "
            "--concurrent 4",
        ],
        (common, out),
    )
    p.add_argument("name")
    p.add_argument("id", help="peer id (12D3KooW...), 64 hex chars or 52-char label")
    p.add_argument("--addr", action="append", help="a multiaddr to dial (repeatable)")
    p.add_argument(
        "--trusted",
        action="store_true",
        help="let the peer use this node too (adds a spec.trust.allow rule)",
    )
    p.add_argument(
        "--models",
        action="append",
        metavar="GLOB,...",
        help="with --trusted: only these models (globs, comma-separated; default all)",
    )
    p.add_argument(
        "--rpm", type=_positive, metavar="N", help="with --trusted: at most N requests a minute"
    )
    p.add_argument(
        "--concurrent",
        type=_positive,
        metavar="N",
        help="with --trusted: at most N requests at once",
    )
    p = add(
        peers,
        "rm",
        cmd_peers,
        "remove a peer from the spec (through spec.apply)",
        ["gate peers rm bob"],
        (common, out),
    )
    p.add_argument("name")
    p = add(
        peers,
        "test",
        cmd_peers,
        "round trip to a peer: RTT, link kind, models",
        ["gate peers test bob"],
        (common, out),
    )
    p.add_argument("name")
