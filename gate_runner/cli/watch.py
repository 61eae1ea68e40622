"""The CLI's live views: `gate status -w` redraws on every change, `gate logs -f` follows
the node's log. Both ride the control plane's event stream on /rpc/ws."""

from __future__ import annotations

__all__ = ("follow_logs", "watch_status")

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml

from gate_runner.cli.client import ControlClient
from gate_runner.cli.output import emit, render_status

# What moves `gate status`: the spec, the components and the peers.
STATUS_EVENTS = [
    "spec.applied",
    "spec.rejected",
    "component.status",
    "peer.connected",
    "peer.disconnected",
]
_CLEAR = "\x1b[H\x1b[2J"


def watch_status(client: ControlClient, fmt: str, *, limit: int | None = None) -> int:
    """Print the status, then again after each change, until interrupted. On a terminal
    the table is redrawn in place; piped, each status follows the last (JSON: one line
    each, so a script can read them as they come). ``limit`` stops after that many."""
    redraw = sys.stdout.isatty() and fmt == "table"
    shown = 0

    def show(reason: str) -> None:
        status = client.call("node.status")
        if fmt == "json":
            print(json.dumps(status), flush=True)
            return
        if redraw:
            sys.stdout.write(_CLEAR)
        elif shown:
            print("---" if fmt == "yaml" else "")
        emit(status, fmt, render_status)
        if fmt == "table":
            print(f"\n[{time.strftime('%H:%M:%S')}] {reason}; watching (Ctrl-C to stop)")
        sys.stdout.flush()

    def first(subscribed_at: int) -> None:
        # Subscribed before the first look: a change right after it is an event, not lost.
        nonlocal shown
        show("now")
        shown += 1

    for event in client.events(STATUS_EVENTS, on_subscribed=first):
        if limit is not None and shown >= limit:
            break
        show(_describe(event))
        shown += 1
    return 0


def _describe(event: dict[str, Any]) -> str:
    data = event["data"]
    kind = event["type"]
    if kind == "spec.applied":
        return f"generation {data['generation']} applied ({data['origin']})"
    if kind == "spec.rejected":
        return f"a spec was rejected ({data['origin']})"
    if kind == "component.status":
        return f"{data['kind']}/{data['key']} changed"
    return f"peer {data['name']} {kind.split('.')[1]}"


def follow_logs(
    client: ControlClient,
    *,
    level: str,
    lines: int,
    follow: bool,
    fmt: str,
    out: Callable[[str], None] = print,
) -> int:
    """The last ``lines`` records at ``level`` or above, then (with ``follow``) new ones as
    the node logs them. Records dropped because this terminal fell behind are reported."""
    render = _log_renderer(fmt)
    printed = 0  # the seq of the last record printed

    def print_tail(limit: int, upto: int | None = None) -> None:
        nonlocal printed
        entries = client.call("logs.tail", {"limit": limit, "level": level})
        for entry in entries[-limit:]:
            seq = entry.pop("seq")
            if seq > printed and (upto is None or seq <= upto):
                out(render(entry))
                printed = seq

    if lines > 0:
        print_tail(lines)
    if not follow:
        return 0

    def catch_up(subscribed_at: int) -> None:
        nonlocal printed
        if lines == 0:
            printed = subscribed_at  # only what comes from now on
        elif subscribed_at > printed:
            # Records logged between the tail and the subscription: the tail has them.
            print_tail(1000, upto=subscribed_at)

    dropped = 0
    for event in client.events(["log"], level=level, on_subscribed=catch_up):
        entry = event["data"]
        if event["seq"] <= printed:
            continue
        printed = event["seq"]
        if event["dropped"] > dropped:
            out(f"... {event['dropped'] - dropped} log records skipped (this reader fell behind)")
            dropped = event["dropped"]
        out(render(entry))
        sys.stdout.flush()
    return 0


def _log_renderer(fmt: str) -> Callable[[dict[str, Any]], str]:
    if fmt == "json":
        return lambda entry: json.dumps(entry)
    if fmt == "yaml":
        return lambda entry: "---\n" + yaml.safe_dump(entry, sort_keys=False).rstrip()

    def text(entry: dict[str, Any]) -> str:
        extras = {k: v for k, v in entry.items() if k not in ("ts", "level", "logger", "msg")}
        line = f"{entry['ts']} {entry['level'].upper():<7} {entry['logger']}: {entry['msg']}"
        if extras:
            line += "  " + " ".join(f"{k}={v}" for k, v in extras.items() if k != "exc")
        if "exc" in extras:
            line += "\n" + str(extras["exc"])
        return line

    return text
