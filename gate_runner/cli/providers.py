"""`gate providers ls|test`: the node's providers, their health and models."""

from __future__ import annotations

__all__ = ("register",)

import argparse
import sys
from typing import Any

from gate_runner.cli.command import EXIT_FAILURE, EXIT_OK, Subparsers, add, group, node_client
from gate_runner.cli.output import emit, table


def _provider_rows(entries: list[dict[str, Any]]) -> str:
    return table(
        ["NAME", "KIND", "SOURCE", "HEALTH", "LATENCY", "MODELS", "BREAKER", "URL"],
        [
            [
                e["name"],
                e["kind"],
                e["source"],
                e["health"]["state"]
                + (f" ({e['health']['error']})" if e["health"]["error"] else ""),
                "" if e["health"]["latencyMs"] is None else f"{e['health']['latencyMs']:.1f}ms",
                ", ".join(e["models"]) or "-",
                e["breaker"],
                e["url"] or "",
            ]
            for e in entries
        ],
    )


def cmd_providers(args: argparse.Namespace) -> int:
    with node_client(args) as client:
        if args.providers_command == "test":
            params = {"name": args.name} if args.name else {}
            print("probing providers...", file=sys.stderr)
            entries = client.call("providers.test", params)
        else:
            entries = client.call("providers.list")
    if not entries and args.output == "table":
        print(
            "no providers: start Ollama (11434) or LM Studio (1234), or add one under "
            "spec.providers.static"
        )
        return EXIT_OK
    emit(entries, args.output, _provider_rows)
    if args.providers_command == "test":
        unhealthy = [e["name"] for e in entries if e["health"]["state"] == "Unhealthy"]
        return EXIT_FAILURE if unhealthy else EXIT_OK
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate providers ls` and `gate providers test`."""
    providers = group(sub, "providers", "list or probe the node's providers", "providers_command")
    add(
        providers,
        "ls",
        cmd_providers,
        "list providers, their health and models",
        ["gate providers ls", "gate providers ls -o yaml"],
        (common, out),
    )
    p = add(
        providers,
        "test",
        cmd_providers,
        "probe providers now (exit 1 if one is unhealthy)",
        ["gate providers test", "gate providers test ollama"],
        (common, out),
    )
    p.add_argument("name", nargs="?", help="one provider (default: all)")
