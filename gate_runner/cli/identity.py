"""`gate id show|export|import`: the node's key, as the spec file's dataDir holds it."""

from __future__ import annotations

__all__ = ("register",)

import argparse
import sys
from pathlib import Path

from gate_runner.cli.client import find_spec_file
from gate_runner.cli.command import EXIT_OK, Subparsers, UsageError, add, group
from gate_runner.cli.output import emit


def _key_path(args: argparse.Namespace) -> Path:
    from gate_runner.spec import NODE, load_spec_file

    loaded = load_spec_file(find_spec_file(args.file), kind=NODE)
    return loaded.spec.key_path


def cmd_id(args: argparse.Namespace) -> int:
    from gate_runner.identity import Identity

    if args.id_command == "import":
        source = Path(args.pem)
        try:
            identity = Identity.from_pem(source.read_bytes())
        except OSError as e:
            raise UsageError(f"cannot read {source}: {e.strerror}") from e
        key_path = _key_path(args)
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity.save(key_path, overwrite=args.force)
        print(f"imported {identity.node_id.peer_id} into {key_path}")
        return EXIT_OK
    identity = Identity.load(_key_path(args))
    if args.id_command == "export":
        sys.stdout.write(identity.to_pem().decode())
        return EXIT_OK
    node_id = identity.node_id
    data = {"peerId": node_id.peer_id, "hex": node_id.hex, "label": node_id.label}
    emit(data, args.output, lambda d: "\n".join(f"{k:<7} {v}" for k, v in d.items()))
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate id show`, `export` and `import`."""
    id_cmd = group(sub, "id", "show, export or import the node identity", "id_command")
    for name, help_, example in (
        ("show", "print the node id in its three forms", "gate id show -o json"),
        ("export", "print the private key (PKCS#8 PEM) to stdout", "gate id export > key.pem"),
    ):
        add(id_cmd, name, cmd_id, help_, [example], (common, out))
    imp = add(
        id_cmd,
        "import",
        cmd_id,
        "install a PKCS#8 PEM key as the node's key",
        ["gate id import key.pem", "gate id import key.pem --force"],
        (common,),
    )
    imp.add_argument("pem", help="PEM file to import")
    imp.add_argument("--force", action="store_true", help="replace an existing key")
