"""The `gate` command line: the top-level parser and the options its commands share, and
the one boundary where an error becomes a message and an exit code. Each command group
registers itself from its own module."""

from __future__ import annotations

__all__ = ("build_parser", "main")

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from gate_runner import __version__
from gate_runner.cli import (
    completion,
    identity,
    init,
    logs,
    node,
    peers,
    providers,
    relay,
    requests,
    spec,
    ui,
)
from gate_runner.cli.client import RpcError
from gate_runner.cli.command import EXIT_FAILURE, EXIT_INVALID, UsageError, examples
from gate_runner.errors import GateError, SpecError
from gate_runner.wire.jsonrpc import SPEC_INVALID

# What a command exits with when its reader closed the pipe: 128 + SIGPIPE, as cat, git or
# kubectl report it when the signal ends them.
EXIT_PIPE = 141


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-f", "--file", help="spec file (default ./gate.yaml, then ~/.config/gate/gate.yaml)"
    )
    common.add_argument(
        "--control", help="control address of the node, host:port or a URL (or GATE_CONTROL)"
    )
    # `gate logs -f` follows, as kubectl's and docker's do: there the spec is --file only.
    common_long = argparse.ArgumentParser(add_help=False)
    common_long.add_argument("--file", help="spec file (as -f elsewhere)")
    common_long.add_argument("--control", help="control address of the node (or GATE_CONTROL)")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    parser = argparse.ArgumentParser(
        prog="gate",
        description="Gate: share your inference engines with yourself and your friends.",
        epilog=examples(
            "gate init                       # write gate.yaml, step by step",
            "gate up -f gate.yaml            # run the node",
            "gate status -w                  # watch it converge",
            "gate apply -f gate.yaml --dry-run",
        )
        + "\n\nexit codes: 0 ok, 1 failure, 2 invalid input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # The order here is the order `gate --help` lists the commands in.
    init.register(sub)
    node.register(sub, common=common, out=out)
    spec.register(sub, common=common, out=out)
    providers.register(sub, common=common, out=out)
    peers.register(sub, common=common, out=out)
    requests.register(sub, common=common, out=out)
    logs.register(sub, common_long=common_long, out=out)
    ui.register(sub, common=common, out=out)
    identity.register(sub, common=common, out=out)
    relay.register(sub)
    completion.register(sub, root=parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a write still buffered fails here, not at the exit
    except BrokenPipeError:
        # The reader went away (`gate status | head -1`): nothing is wrong, and there is no
        # one to tell. Exit as a tool killed by SIGPIPE does, so that `set -o pipefail` sees
        # the cut-short output as it would from cat; stdout goes to /dev/null so that the
        # interpreter's own final flush does not fail again and print a traceback.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EXIT_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return EXIT_INVALID
    except RpcError as e:
        if e.code == SPEC_INVALID and isinstance(e.data, dict):
            for issue in e.data.get("issues", []):
                print(_format_issue(issue), file=sys.stderr)
            return EXIT_INVALID
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except UsageError as e:
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_INVALID
    except GateError as e:
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _format_issue(issue: dict[str, Any]) -> str:
    from gate_runner.errors import SpecIssue

    return str(SpecIssue(**issue))


if __name__ == "__main__":
    sys.exit(main())
