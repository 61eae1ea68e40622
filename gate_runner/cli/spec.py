"""The spec commands: `gate validate`, `apply`, `diff`, `rollback`, `get`, `history` and
`migrate`, and how an apply's result is printed (`gate peers add` and `rm` apply too)."""

from __future__ import annotations

__all__ = ("print_apply", "register")

import argparse
import sys
from pathlib import Path
from typing import Any

from gate_runner.cli.command import (
    EXIT_FAILURE,
    EXIT_OK,
    Subparsers,
    UsageError,
    add,
    node_client,
)
from gate_runner.cli.output import emit, table


def _read_file(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
            hint="save the file as UTF-8",
        ) from e


def cmd_validate(args: argparse.Namespace) -> int:
    from gate_runner.spec import load_spec_file

    if args.file is None:
        raise UsageError("validate needs -f FILE")
    try:
        loaded = load_spec_file(args.file)
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from e
    extra = f" (migrated from {loaded.migrated_from})" if loaded.migrated_from else ""
    print(f"{args.file}: valid {loaded.kind} spec{extra}")
    return EXIT_OK


def _apply_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is None:
        raise UsageError(f"{args.command} needs -f FILE")
    return {"yaml": _read_file(args.file), "source": str(Path(args.file).absolute())}


def cmd_diff(args: argparse.Namespace) -> int:
    params = _apply_params(args)
    with node_client(args, strict=True) as client:
        result = client.call("spec.diff", params)
    print(result["diff"] or f"no changes against generation {result['generation']}", end="")
    if result["diff"] == "":
        print()
    return EXIT_OK


def print_apply(result: dict[str, Any], *, verb: str, fmt: str = "table") -> None:
    if fmt != "table":
        emit(result, fmt, str)
        return
    if result.get("diff"):
        print(result["diff"], end="" if result["diff"].endswith("\n") else "\n")
    if result.get("dryRun"):
        print(f"dry run: nothing applied (generation stays {result['generation']})")
    elif not result.get("changed"):
        print(f"no changes: generation stays {result['generation']}")
    else:
        state = "converged" if result.get("converged") else "still converging"
        print(
            f"{verb} generation {result['generation']}, {state} "
            f"(observed {result.get('observedGeneration')})"
        )


def cmd_apply(args: argparse.Namespace) -> int:
    params = _apply_params(args)
    params["dryRun"] = args.dry_run
    if args.expected_generation is not None:
        params["expectedGeneration"] = args.expected_generation
    with node_client(args, strict=True) as client:
        result = client.call("spec.apply", params)
    print_apply(result, verb="applied", fmt=args.output)
    return EXIT_OK if result.get("converged", True) else EXIT_FAILURE


def cmd_rollback(args: argparse.Namespace) -> int:
    params = {} if args.generation is None else {"generation": args.generation}
    with node_client(args) as client:
        result = client.call("spec.rollback", params)
    print_apply(
        result, verb=f"rolled back to generation {result['rolledBackTo']} as", fmt=args.output
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    with node_client(args) as client:
        result = client.call("spec.get")
    if args.output == "table":
        sys.stdout.write(result["yaml"])
    else:
        emit(result["document"], args.output, str)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    with node_client(args) as client:
        entries = client.call("spec.history", {"limit": args.limit})
    emit(
        entries,
        args.output,
        lambda rows: table(
            ["GENERATION", "APPLIED", "ORIGIN", "SOURCE"],
            [[e["generation"], e["appliedAt"], e["origin"], e["source"]] for e in rows],
        ),
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from gate_runner.cli.migrate import migrate_file_text
    from gate_runner.spec.write import atomic_write

    if args.file is None:
        raise UsageError("migrate needs -f FILE")
    text = _read_file(args.file)
    new_text, old_version = migrate_file_text(text, source=args.file)
    if old_version is None:
        print(f"{args.file}: already current; nothing to do")
        return EXIT_OK
    if args.stdout:
        sys.stdout.write(new_text)
        return EXIT_OK
    path = Path(args.file)
    atomic_write(path.with_name(path.name + ".bak"), text)
    atomic_write(path, new_text)
    print(f"{args.file}: migrated from {old_version}; the old file is at {path.name}.bak")
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate validate`, `apply`, `diff`, `rollback`, `get`, `history` and `migrate`."""
    add(
        sub,
        "validate",
        cmd_validate,
        "check a spec file without a running node",
        ["gate validate -f gate.yaml"],
        (common,),
    )
    apply = add(
        sub,
        "apply",
        cmd_apply,
        "apply a spec file to the running node, print the diff",
        ["gate apply -f gate.yaml", "gate apply -f gate.yaml --dry-run -o json"],
        (common, out),
    )
    apply.add_argument("--dry-run", action="store_true", help="validate and diff only")
    apply.add_argument(
        "--expected-generation",
        type=int,
        metavar="N",
        help="apply only if the node is at generation N",
    )
    add(
        sub,
        "diff",
        cmd_diff,
        "show what applying a spec file would change",
        ["gate diff -f new.yaml"],
        (common,),
    )
    rollback = add(
        sub,
        "rollback",
        cmd_rollback,
        "re-apply an earlier generation (default: previous)",
        ["gate rollback", "gate rollback 3"],
        (common, out),
    )
    rollback.add_argument("generation", type=int, nargs="?")
    add(
        sub,
        "get",
        cmd_get,
        "print the spec the node is running (YAML by default)",
        ["gate get > running.yaml", "gate get -o json"],
        (common, out),
    )
    history = add(
        sub,
        "history",
        cmd_history,
        "list accepted spec generations",
        ["gate history --limit 5"],
        (common, out),
    )
    history.add_argument("--limit", type=int, default=20)
    migrate = add(
        sub,
        "migrate",
        cmd_migrate,
        "upgrade a spec file to the current apiVersion, keeping its comments",
        ["gate migrate -f old.yaml", "gate migrate -f old.yaml --stdout"],
        (common,),
    )
    migrate.add_argument("--stdout", action="store_true", help="print instead of rewriting")
