"""The bridge to a worker thread: results and errors come back, and a cancelled caller sets
the stop flag and still waits for the thread to end."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from gate_runner.providers.threadbridge import run_stoppable

pytestmark = pytest.mark.anyio


async def test_the_result_comes_back_from_the_thread() -> None:
    stop = threading.Event()
    caller = threading.get_ident()
    ident = await run_stoppable(threading.get_ident, stop)
    assert ident != caller
    assert not stop.is_set()


async def test_an_error_comes_back_as_itself() -> None:
    def fail() -> None:
        raise KeyError("k")

    with pytest.raises(KeyError):
        await run_stoppable(fail, threading.Event())


async def test_a_cancelled_caller_stops_the_call_and_waits_for_it() -> None:
    stop = threading.Event()
    ended: list[float] = []

    def loop() -> None:
        # As llama.cpp's token loop does: a step at a time, checking the flag in between.
        while not stop.is_set():
            time.sleep(0.005)
        time.sleep(0.05)  # the last step still finishes
        ended.append(time.monotonic())

    with anyio.move_on_after(0.05) as scope:
        await run_stoppable(loop, stop)
    returned = time.monotonic()
    assert scope.cancelled_caught
    assert stop.is_set()
    assert ended and ended[0] <= returned, "the call returned before its thread ended"
