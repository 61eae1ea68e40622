"""Durable file operations shared by the spec writer, state.db and the runtime record."""

from __future__ import annotations

__all__ = ("fsync_dir",)

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` survive a crash: the directory entry
    is on disk only once the directory itself is fsynced."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
