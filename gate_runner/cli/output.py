"""Rendering command results: a table by default, or JSON or YAML with -o."""

from __future__ import annotations

__all__ = ("emit", "render_peers", "render_status", "table")

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import yaml


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def emit(data: Any, fmt: str, render_table: Callable[[Any], str]) -> None:
    if fmt == "json":
        json.dump(data, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif fmt == "yaml":
        yaml.safe_dump(data, sys.stdout, sort_keys=False, allow_unicode=True)
    else:
        print(render_table(data))


def render_status(status: dict[str, Any]) -> str:
    spec = status["spec"]
    lines = [
        f"Node:      {status['name']}  ({status['identity']['peerId']})",
        f"Version:   {status['version']}",
        f"Spec:      generation {spec['generation']} (observed {spec['observedGeneration']})"
        f" from {spec['source']}, applied {spec['lastAppliedAt']}",
    ]
    for o in spec.get("overrides") or []:
        lines.append(f"Override:  {o['name']} -> {o['path']} = {o['value']!r}")
    if spec.get("lastError"):
        lines.append("Error:     last spec was rejected; still running the generation above")
        lines.extend("  " + line for line in str(spec["lastError"]).splitlines())
    rows = []
    for c in status["components"]:
        ready = next((x for x in c["conditions"] if x["type"] == "Ready"), None)
        rows.append(
            [
                f"{c['kind']}/{c['key']}",
                "yes" if ready and ready["status"] else "no",
                ready["reason"] if ready else "",
                c["observedGeneration"],
                c.get("restarts", 0),
                ready["message"] if ready else "",
            ]
        )
    lines.append("")
    lines.append(table(["COMPONENT", "READY", "REASON", "GEN", "RESTARTS", "MESSAGE"], rows))
    peers = status.get("peers") or []
    if peers:
        lines.append("")
        lines.append(
            table(
                ["PEER", "STATE", "RTT", "MODELS", "PEER ID"],
                [
                    [
                        p["name"],
                        p["state"],
                        "-" if p["lastRttMs"] is None else f"{p['lastRttMs']:.1f}ms",
                        p["models"],
                        p["peerId"],
                    ]
                    for p in peers
                ],
            )
        )
    return "\n".join(lines)


def render_peers(peers: list[dict[str, Any]]) -> str:
    """`gate peers ls`: both directions of each link. THEY OFFER ME is what the peer's hello
    offered this node (marked stale while it is away); THEY MAY USE is what this node's trust
    rules let it use. A node from before explicit trust sends neither field: shown as ?."""
    return table(
        [
            "NAME",
            "STATE",
            "CONN",
            "RTT",
            "THEY OFFER ME",
            "THEY MAY USE",
            "SERVED",
            "SENT",
            "PEER ID",
        ],
        [
            [
                p["name"],
                p["state"],
                p.get("connection") or "-",
                "-" if p.get("lastRttMs") is None else f"{p['lastRttMs']:.1f}ms",
                _offered(p),
                _shared(p),
                p.get("requestsServed", ""),
                p.get("requestsSent", ""),
                p["peerId"],
            ]
            for p in peers
        ],
    )


def _offered(peer: dict[str, Any]) -> str:
    models = ", ".join(peer.get("models") or []) or "-"
    return f"{models} (stale)" if peer.get("modelsStale") and peer.get("models") else models


def _shared(peer: dict[str, Any]) -> str:
    if "trusted" not in peer:
        return "?"
    if not peer["trusted"]:
        return "nothing (not trusted)"
    globs = peer.get("sharedModels")
    if globs is None or "*" in globs:
        text = "all"
    else:
        text = ", ".join(globs) or "no models"
    limit = peer.get("rateLimit") or {}
    limits = []
    if limit.get("requestsPerMinute") is not None:
        limits.append(f"{limit['requestsPerMinute']}/min")
    if limit.get("concurrent") is not None:
        limits.append(f"{limit['concurrent']} at once")
    return f"{text} ({', '.join(limits)})" if limits else text
