"""The file watcher: watches gate.yaml's directory (not the inode) and debounces bursts."""

from __future__ import annotations

__all__ = ("watch_spec_file",)

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.abc import TaskStatus
from watchfiles import Change, awatch

log = logging.getLogger(__name__)


async def watch_spec_file(
    path: Path,
    on_change: Callable[[], Awaitable[None]],
    *,
    stop: anyio.Event,
    quiet_ms: int = 50,
    max_delay_ms: int = 400,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``on_change`` once per burst of writes to ``path``.

    The directory is watched, so an editor that saves by writing a temp file and renaming
    it over the original (vim, VS Code, `sed -i`) is seen like an in-place write, and the
    watch survives the inode changing. A burst ends after ``quiet_ms`` without events
    (at most ``max_delay_ms`` after its first), so two quick saves become one apply of the
    last content. Set ``stop`` before cancelling: the watch runs in a worker thread that
    checks it every ``quiet_ms``, whereas a bare cancel waits for the thread's timeout.
    """
    directory = path.parent
    name = path.name

    def relevant(change: Change, changed: str) -> bool:
        return Path(changed).name == name

    task_status.started()
    async for changes in awatch(
        directory,
        watch_filter=relevant,
        debounce=max_delay_ms,
        step=quiet_ms,
        stop_event=stop,
        recursive=False,
        # Bounds how long a cancel without `stop` waits for the watch thread.
        rust_timeout=1000,
    ):
        log.debug("spec file changed", extra={"changes": len(changes)})
        await on_change()
