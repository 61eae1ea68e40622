"""The event bus: ordered fan-out, drop-oldest backpressure, and publishing from threads."""

from __future__ import annotations

import threading

import pytest
import trio

from gate_runner.events import EventBus


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    bus = EventBus()
    sub = bus.subscribe(["spec.applied"], capacity=3)
    for i in range(10):
        bus.publish("spec.applied", {"generation": i})

    async def drain() -> list[int]:
        return [(await sub.next()).data["generation"] for _ in range(3)]

    assert trio.run(drain) == [7, 8, 9]
    assert sub.dropped == 7


def test_each_subscriber_gets_only_its_types_in_order() -> None:
    bus = EventBus()
    specs = bus.subscribe(["spec.applied", "spec.rejected"])
    logs = bus.subscribe(["log"], min_log_level="warning")
    bus.publish("spec.applied", {"n": 1})
    bus.publish("log", {"level": "info", "msg": "quiet"})
    bus.publish("log", {"level": "error", "msg": "loud"})
    bus.publish("spec.rejected", {"n": 2})
    assert bus.listening("log") and not bus.listening("request.completed")

    async def take(sub, n):  # type: ignore[no-untyped-def]
        return [await sub.next() for _ in range(n)]

    got = trio.run(take, specs, 2)
    assert [(e.type, e.seq) for e in got] == [("spec.applied", 1), ("spec.rejected", 4)]
    (loud,) = trio.run(take, logs, 1)
    assert loud.data["msg"] == "loud"
    logs.close()
    assert not bus.listening("log")


def test_a_closed_subscription_ends_its_reader() -> None:
    async def main() -> None:
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe()
        async with trio.open_nursery() as nursery:
            ended = trio.Event()

            async def reader() -> None:
                with pytest.raises(trio.EndOfChannel):
                    await sub.next()
                ended.set()

            nursery.start_soon(reader)
            await trio.sleep(0.01)
            sub.close()
            with trio.fail_after(5):
                await ended.wait()

    trio.run(main)


def test_publishing_from_another_thread_wakes_the_reader() -> None:
    async def main() -> list[int]:
        bus = EventBus()
        bus.bind()
        sub = bus.subscribe(["log"], min_log_level="debug")

        def publish_many() -> None:
            for i in range(500):
                bus.publish("log", {"level": "info", "i": i})

        thread = threading.Thread(target=publish_many)
        got = []
        with trio.fail_after(10):
            thread.start()
            while len(got) < 500:
                got.append((await sub.next()).data["i"])
        thread.join()
        return got

    assert trio.run(main) == list(range(500))
