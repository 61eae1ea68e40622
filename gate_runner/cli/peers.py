"""`gate peers ls|add|rm|test`: the peers and their links both ways; add and rm change the
spec through spec.apply. `gate peers invite|accept|pending|approve|ignore`: pairing by
invite, and the requests of peers that dialed in unknown."""

from __future__ import annotations

__all__ = ("register",)

import argparse
import sys
import time
from typing import Any

from gate_runner.cli.client import ControlClient, RpcError
from gate_runner.cli.command import EXIT_OK, Subparsers, UsageError, add, group, node_client
from gate_runner.cli.output import emit, render_peers, table
from gate_runner.cli.spec import print_apply
from gate_runner.wire.jsonrpc import GATE_ERROR, INVALID_PARAMS


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _ttl(text: str) -> float:
    """An invite's lifetime: a spec duration (90m, 48h) or whole days (7d)."""
    # Here, not at the top: parsing a command loads none of the spec's or the key's code.
    from gate_runner.spec.durations import DURATION_HINT, parse_duration
    from gate_runner.wire.invite import MAX_TTL, MIN_TTL

    try:
        seconds = float(text[:-1]) * 86400 if text.endswith("d") else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} ({DURATION_HINT}, or days: 7d)"
        ) from None
    if not MIN_TTL <= seconds <= MAX_TTL:
        raise argparse.ArgumentTypeError(
            f"an invite may be valid for 1m to {MAX_TTL / 86400:.0f}d, not {text}"
        )
    return seconds


def _grant_params(args: argparse.Namespace, who: str) -> dict[str, Any]:
    """What a peer may use of this node, as peers.add, peers.accept and peers.approve take
    it. Knowing a peer and trusting it are separate choices (DESIGN.md section 2): what it
    may use is said only together with --trusted."""
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
            f"{', '.join(scoped)} say what {who} may use of this node, but it is not "
            "trusted to use it",
            hint="add --trusted, or leave them out to only know the peer (use what it offers)",
        )
    if not args.trusted:
        return {}
    params: dict[str, Any] = {"trusted": True}
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


def _peer_params(args: argparse.Namespace) -> dict[str, Any]:
    """peers.add's params."""
    params: dict[str, Any] = {"name": args.name, "id": args.id}
    if args.addr:
        params["addrs"] = args.addr
    return {**params, **_grant_params(args, args.name)}


def _invite_text(arg: str) -> str:
    """The invite argument, or stdin for "-" (read no further than an invite can be)."""
    from gate_runner.wire.invite import MAX_INVITE_TEXT

    text = sys.stdin.read(MAX_INVITE_TEXT + 1) if arg == "-" else arg
    if len(text) > MAX_INVITE_TEXT:
        raise UsageError(
            f"that is more than {MAX_INVITE_TEXT:,} characters, far more than an invite",
            hint="pass only the gate-invite:v1:... text, or the link that carries it",
        )
    return text


def _pairing_params(args: argparse.Namespace) -> dict[str, Any]:
    """peers.accept's or peers.approve's params, checked before the node is asked."""
    command = args.peers_command
    if command == "accept":
        params: dict[str, Any] = {"invite": _invite_text(args.invite)}
        who = args.name or "the invite's node"
    else:
        params = {"peerId": args.id}
        who = args.name or args.id
    if args.name:
        params["name"] = args.name
    return {**params, **_grant_params(args, who)}


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


def cmd_pairing(args: argparse.Namespace) -> int:
    command = args.peers_command
    params = _pairing_params(args) if command in ("accept", "approve") else None
    with node_client(args) as client:
        if command == "invite":
            ttl = {} if args.ttl is None else {"ttl": args.ttl}
            emit(client.call("peers.invite", ttl), args.output, _render_invite)
            return EXIT_OK
        if command == "pending":
            emit(client.call("peers.pending"), args.output, _render_pending)
            return EXIT_OK
        if command == "ignore":
            result = _call_with_input(client, "peers.ignore", {"peerId": args.id})
            emit(result, args.output, lambda r: f"ignored the request of {r['peerId']}")
            return EXIT_OK
        assert params is not None
        result = _call_with_input(client, f"peers.{command}", params)
    print_apply(result, verb="applied", fmt=args.output)
    if args.output == "table":
        peer = result["peer"]
        trusted = "it may use this node" if params.get("trusted") else "it may not use this node"
        print(f"added peer {peer['name']} ({peer['peerId']}); {trusted}")
    return EXIT_OK


def _call_with_input(client: ControlClient, method: str, params: dict[str, Any]) -> Any:
    """A call whose refusals are about what was typed: a bad invite, an id with no
    request, a name taken. Those exit 2 (invalid input), as a usage error does."""
    try:
        return client.call(method, params)
    except RpcError as e:
        if e.code in (INVALID_PARAMS, GATE_ERROR):
            raise UsageError(e.message, hint=e.hint) from e
        raise


def _render_invite(result: dict[str, Any]) -> str:
    """The invite alone on the first line (for `| head -1`), then how to use it."""
    lines = [
        result["invite"],
        "",
        f"An invite to {result['name']} ({result['peerId']}), valid until "
        f"{result['expiresAt']}. Send it to a friend; their node adds this one with",
        f"  gate peers accept '{result['invite']}'",
        "or by opening this link in their Gate web UI:",
        f"  {result['link']}",
        "Their node then shows here in `gate peers pending`, to approve or ignore.",
    ]
    if result.get("note"):
        lines += ["", f"Note: {result['note']}"]
    return "\n".join(lines)


def _render_pending(requests: list[dict[str, Any]]) -> str:
    if not requests:
        return (
            "no pending requests: a peer that is not in the spec shows up here when it "
            "dials this node"
        )
    return table(
        ["PEER ID", "NAME", "ADDRESS", "SEEN", "FIRST SEEN", "LAST SEEN"],
        [
            [
                r["peerId"],
                r["name"] or "-",
                r["address"] or "-",
                f"{r['count']}x",
                _utc(r["firstSeen"]),
                _utc(r["lastSeen"]),
            ]
            for r in requests
        ],
    )


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _grant_flags(p: argparse.ArgumentParser) -> None:
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


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate peers ls`, `add`, `rm`, `test`, `invite`, `accept`, `pending`, `approve`
    and `ignore`."""
    peers = group(sub, "peers", "list, add, remove, test or pair with peers", "peers_command")
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
    _grant_flags(p)
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
    p = add(
        peers,
        "invite",
        cmd_pairing,
        "print this node's invite: its peer id, addresses and name, signed by its key, for a "
        "friend to accept (`gate peers accept`); as text and as a link",
        ["gate peers invite", "gate peers invite --ttl 1d", "gate peers invite -o json"],
        (common, out),
    )
    p.add_argument(
        "--ttl",
        type=_ttl,
        metavar="DURATION",
        help="how long the invite stays valid: 1m to 30d (default 7d)",
    )
    p = add(
        peers,
        "accept",
        cmd_pairing,
        "add the node of a friend's invite to the spec (through spec.apply), once its "
        "signature and expiry check out. Without --trusted you may use what it offers; with "
        "it, it may also use this node",
        [
            "gate peers accept 'gate-invite:v1:...'",
            "gate peers accept 'http://127.0.0.1:8145/#invite=gate-invite:v1:...' --name bob",
            "gate peers accept - --trusted --models 'llama3*' < invite.txt",
        ],
        (common, out),
    )
    p.add_argument("invite", help="the gate-invite:v1:... text, a link carrying it, or - (stdin)")
    p.add_argument("--name", help="the peer's name here (default: the name in the invite)")
    _grant_flags(p)
    add(
        peers,
        "pending",
        cmd_pairing,
        "peers not in the spec that dialed this node: approve or ignore them",
        ["gate peers pending", "gate peers pending -o json"],
        (common, out),
    )
    p = add(
        peers,
        "approve",
        cmd_pairing,
        "add a pending peer to the spec (through spec.apply). Without --trusted you may use "
        "what it offers; with it, it may also use this node",
        ["gate peers approve 12D3KooW... --name bob", "gate peers approve 12D3KooW... --trusted"],
        (common, out),
    )
    p.add_argument("id", help="the pending peer's id (12D3KooW...), 64 hex chars or label")
    p.add_argument("--name", help="the peer's name here (default: the name it gave)")
    _grant_flags(p)
    p = add(
        peers,
        "ignore",
        cmd_pairing,
        "hide a pending request; the spec does not change",
        ["gate peers ignore 12D3KooW..."],
        (common, out),
    )
    p.add_argument("id", help="the pending peer's id (12D3KooW...), 64 hex chars or label")
