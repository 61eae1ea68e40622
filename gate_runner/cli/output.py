"""Rendering command results: a table by default, or JSON or YAML with -o."""

from __future__ import annotations

__all__ = ("emit", "render_status", "table")

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
