"""Durable file operations shared by the spec writer, state.db, the key and the token."""

from __future__ import annotations

__all__ = ("fsync_dir", "write_secret")

import os
import secrets
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a crash: the directory entry
    is on disk only once the directory itself is fsynced."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_secret(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write a file only its owner may read (a key, a token): mode 0600 from the first byte,
    whole or not at all (a temporary file, fsynced, then put in place), and durable.

    Without ``overwrite`` it raises FileExistsError when ``path`` exists, even when another
    process creates it meanwhile (``link`` fails where an exists() check could race), so
    two writers can never replace each other's secret. Other failures raise OSError; the
    temporary file never stays behind.
    """
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            # The umask may have removed bits from 0o600; readers want exactly owner-only.
            os.fchmod(f.fileno(), 0o600)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            tmp.unlink()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(directory)
