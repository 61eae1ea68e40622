"""What each `gate` command module builds on: the exit codes, UsageError, `add` and `group` to
register a command with its examples, and the control client of -f/--control."""

from __future__ import annotations

__all__ = (
    "EXIT_FAILURE",
    "EXIT_INVALID",
    "EXIT_OK",
    "Command",
    "Subparsers",
    "UsageError",
    "add",
    "examples",
    "group",
    "node_client",
)

import argparse
from collections.abc import Callable, Sequence
from typing import TypeAlias

from gate_runner.cli.client import ControlClient, locate_node
from gate_runner.errors import GateError

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2

Command: TypeAlias = Callable[[argparse.Namespace], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class UsageError(GateError):
    """Raised for invalid command-line input (exit 2)."""


def node_client(args: argparse.Namespace, *, strict: bool = False) -> ControlClient:
    """A client for the node of -f (or --control). ``strict`` validates the spec file first,
    for the commands that send it; the others reach the node even when the file is broken."""
    return ControlClient(locate_node(control=args.control, spec_file=args.file, strict=strict))


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def add(
    into: Subparsers,
    name: str,
    func: Command,
    help_: str,
    example_lines: Sequence[str],
    parents: Sequence[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the command ``name`` running ``func``; its help is also its description, and the
    examples are its epilog. Every command starts with ``output="table"``."""
    p = into.add_parser(
        name,
        help=help_,
        description=help_,
        parents=list(parents),
        epilog=examples(*example_lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=func, output="table")
    return p


def group(into: Subparsers, name: str, help_: str, dest: str) -> Subparsers:
    """Add the command group ``name``; the chosen subcommand lands in ``args.<dest>``."""
    p = into.add_parser(name, help=help_, description=help_)
    return p.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")
