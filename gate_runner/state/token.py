"""The control token in dataDir/control.token: created once with mode 0600, read by the CLI."""

from __future__ import annotations

__all__ = ("load_or_create_token", "read_token")

import secrets
from pathlib import Path

from gate_runner.errors import GateError
from gate_runner.files import write_secret


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as e:
        raise GateError(
            f"no control token at {path}",
            hint="start the node with `gate up`, or pass --control and GATE_TOKEN",
        ) from e
    except OSError as e:
        raise GateError(f"cannot read control token {path}: {e.strerror}") from e
    if not token:
        raise GateError(f"control token {path} is empty", hint="delete it and restart the node")
    return token


def load_or_create_token(path: Path) -> str:
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)  # our own file; tighten rather than refuse
        return read_token(path)
    token = secrets.token_urlsafe(32)
    try:
        write_secret(path, (token + "\n").encode("ascii"))
    except FileExistsError:
        return read_token(path)  # another start made it first: use that one
    return token
