"""A real small filesystem for the disk-full tests: a tmpfs mounted in the test's directory.

Mounting needs root (CI runs as root); elsewhere the tests that use it skip, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.rig import skip_unless_allowed


@contextlib.contextmanager
def mounted_tmpfs(path: Path, *, size: str = "256k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (made if missing) for the duration of the block."""
    if os.geteuid() != 0:
        skip_unless_allowed("needs root to mount a small tmpfs and fill it (CI runs as root)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        skip_unless_allowed(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a file a failed test left open must not keep the mount (and the test) alive.
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Write ``directory/name`` until the filesystem is full, and return it: removing it
    makes room again. Files already there keep the unused tail of their last page, so a
    short append to them may still succeed, and a longer one is cut short."""
    filler = directory / name
    with open(filler, "wb", buffering=0) as f:
        chunk = bytes(4096)
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler
