"""Shared pieces of the P2P tests: running real hosts on loopback, counting tasks and fds."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import trio

from gate_runner.identity import Identity
from gate_runner.p2p import P2PHost

LOOPBACK = "/ip4/127.0.0.1/tcp/0"


def new_host(*, allow_peer: Callable[[str], bool] | None = None) -> P2PHost:
    return P2PHost(seed=Identity.generate().seed, listen=[LOOPBACK], allow_peer=allow_peer)


@asynccontextmanager
async def running(*hosts: P2PHost) -> AsyncIterator[None]:
    """Run the hosts (each ready on entry) and stop them all on exit."""
    async with anyio.create_task_group() as tg:
        for host in hosts:
            await tg.start(host.run)
        yield
        tg.cancel_scope.cancel()


async def connected(dialer: P2PHost, target: P2PHost) -> None:
    await dialer.connect(target.peer_id, target.listen_addrs())


def task_count() -> int:
    """Every task in this trio run, system tasks included (libp2p's listener and identify
    tasks are system tasks)."""
    count, todo = 0, [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        count += 1
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return count


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


async def wait_until(check: Callable[[], bool], *, within: float = 5.0) -> None:
    with anyio.fail_after(within):
        while not check():
            await anyio.sleep(0.01)
