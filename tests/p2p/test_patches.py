"""Our patches to py-libp2p (gate_runner.p2p.patches): installed only when a host starts,
never outside the tested versions, touching only what they declare; and through real hosts
on loopback: the Noise session survives cancelled writers, flow control still works with
batched window updates, and a small exchange costs one yamux frame each way."""

from __future__ import annotations

import ast
import inspect
import json
import random
import struct
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import pytest
from libp2p import new_host as libp2p_new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.io.trio import TrioTCPStream
from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

from gate_runner.identity import Identity
from gate_runner.p2p import P2PStream, StreamError, patches
from gate_runner.p2p.frames import encode_frame, read_frame, write_frame
from tests.p2p.helpers import connected, new_host, running

pytestmark = pytest.mark.anyio

ECHO = "/test/echo/1"
SINK = "/test/sink/1"
MAX = 8 << 20


async def echo(stream: P2PStream, peer: str) -> None:
    while frame := await read_frame(stream, max_size=MAX):
        await write_frame(stream, frame)
    await write_frame(stream, b"")


async def sink(stream: P2PStream, peer: str) -> None:
    while await stream.read():
        pass


PATCHED: list[tuple[type, str]] = [
    (TrioTCPStream, "write"),
    (TrioTCPStream, "read"),
    (YamuxStream, "_auto_tune_and_send_window_update"),
    (YamuxStream, "write"),
    (Yamux, "_read_data_body"),
]


def _libp2p_swarm() -> Any:
    """The swarm of a libp2p host that is built but never run."""
    return libp2p_new_host(key_pair=create_new_key_pair(Identity.generate().seed)).get_network()


def _has_identify_notifee(swarm: Any) -> bool:
    return any(type(n).__name__ == "_IdentifyNotifee" for n in swarm.notifees)


def test_install_patches_each_method_once() -> None:
    swarm = _libp2p_swarm()
    assert _has_identify_notifee(swarm)
    assert patches.install(swarm)
    methods = [getattr(owner, name) for owner, name in PATCHED]
    assert all(getattr(method, "_gate_patched", False) for method in methods)
    handler = swarm._do_handle_inbound_connection
    assert handler._gate_patched and not _has_identify_notifee(swarm)
    assert patches.install(swarm)  # again: nothing is wrapped twice
    assert [getattr(owner, name) for owner, name in PATCHED] == methods
    assert swarm._do_handle_inbound_connection is handler


# Run in a fresh interpreter, as patches installed in this one cannot be taken back. It reports
# each step as JSON: what importing Gate changed, what an untested py-libp2p version changed
# and logged, what starting a host changed, and what install() changes on a swarm.
_FRESH = textwrap.dedent(
    """
    import json, logging, sys

    import gate_runner.p2p.host  # the whole of gate_runner.p2p
    import trio
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.io.trio import TrioTCPStream
    from libp2p.stream_muxer.yamux.yamux import Yamux, YamuxStream

    from gate_runner.identity import Identity
    from gate_runner.p2p import P2PHost, patches

    CLASSES = (TrioTCPStream, YamuxStream, Yamux)
    LOGGERS = ("libp2p.transport.tcp.tcp", "libp2p.network.swarm")
    warnings = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: warnings.append(record.getMessage())
    logging.getLogger("gate.p2p").addHandler(handler)

    def swarm():
        return new_host(key_pair=create_new_key_pair(Identity.generate().seed)).get_network()

    def snapshot(owner):
        return {
            k: tuple(map(id, v)) if isinstance(v, list) else id(v) for k, v in vars(owner).items()
        }

    def changed(before, owner, label):
        after = snapshot(owner)
        return sorted(
            f"{label}.{k}" for k in before.keys() | after.keys() if before.get(k) != after.get(k)
        )

    def state(swarm):
        return {
            "patched": sorted(
                f"{cls.__name__}.{k}"
                for cls in CLASSES
                for k, v in vars(cls).items()
                if getattr(v, "_gate_patched", False)
            ),
            "filters": sum(len(logging.getLogger(n).filters) for n in LOGGERS),
            "swarm": sorted(
                k for k, v in vars(swarm).items() if getattr(v, "_gate_patched", False)
            ),
            "identify": any(type(n).__name__ == "_IdentifyNotifee" for n in swarm.notifees),
        }

    report = {"imported": state(swarm())}

    classes = {cls.__name__: snapshot(cls) for cls in CLASSES}
    untested = swarm()
    report["untested_installed"] = [
        patches.install(untested, version=v) for v in ("0.9.0", "0.9.0", "0.8.0", "1.0")
    ]
    report["untested"] = state(untested)
    report["untested_warnings"] = list(warnings)

    async def start():
        host = P2PHost(seed=Identity.generate().seed, listen=["/ip4/127.0.0.1/tcp/0"])
        async with trio.open_nursery() as nursery:
            await nursery.start(host.run)
            report["started"] = state(host._host.get_network())
            nursery.cancel_scope.cancel()

    trio.run(start)
    report["changed"] = [
        name for cls in CLASSES for name in changed(classes[cls.__name__], cls, cls.__name__)
    ]
    fresh = swarm()
    before = snapshot(fresh)
    report["installed"] = patches.install(fresh)
    report["changed"] += changed(before, fresh, "swarm")
    report["warnings"] = warnings
    json.dump(report, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def fresh() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


UNPATCHED = {"patched": [], "filters": 0, "swarm": [], "identify": True}


def test_importing_gate_patches_nothing(fresh: dict[str, Any]) -> None:
    assert fresh["imported"] == UNPATCHED


def test_starting_a_host_installs_every_patch(fresh: dict[str, Any]) -> None:
    assert fresh["started"] == {
        "patched": sorted(f"{owner.__name__}.{name}" for owner, name in PATCHED),
        "filters": 2,
        "swarm": ["_do_handle_inbound_connection"],
        "identify": False,
    }
    assert fresh["installed"] is True and fresh["warnings"] == fresh["untested_warnings"]


def test_an_untested_libp2p_gets_no_patch_and_one_warning_per_version(
    fresh: dict[str, Any],
) -> None:
    assert fresh["untested_installed"] == [False] * 4
    assert fresh["untested"] == UNPATCHED
    warnings = fresh["untested_warnings"]
    assert [w.split()[1] for w in warnings] == ["0.9.0", "0.8.0", "1.0"]
    assert all("none is installed" in w for w in warnings)


def _declarations() -> dict[str, dict[str, set[str]]]:
    """For each patch function in patches.py: owner -> the libp2p names it declares, from its
    ``_install(owner, name, ..., needs=...)`` and ``_present(owner, needs, ...)`` calls."""
    declared: dict[str, dict[str, set[str]]] = {}
    for node in ast.parse(inspect.getsource(patches)).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for call in ast.walk(node):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)):
                continue
            if call.func.id not in ("_install", "_present") or node.name == "_install":
                continue
            owner = ast.unparse(call.args[0]).split(".")[-1]
            names = declared.setdefault(node.name, {}).setdefault(owner, set())
            if call.func.id == "_install":
                names.add(ast.literal_eval(call.args[1]))
                needs = [k.value for k in call.keywords if k.arg == "needs"]
            else:
                needs = [call.args[1]]
            for need in needs:
                names.update(ast.literal_eval(need))
    return declared


def test_each_patch_uses_only_the_libp2p_names_it_declares() -> None:
    declared = _declarations()
    assert set(declared) == {
        "send_tcp_writes_whole",
        "buffer_tcp_reads",
        "batch_window_updates",
        "read_buffered_data_bodies",
        "write_small_frames_directly",
        "drop_auto_identify",
        "stop_inbound_task_leak",
    }
    for function, owners in declared.items():
        # The object a patch works on is `self` in a replaced method, `swarm` for one host's.
        (names,) = owners.values()
        used = {
            node.attr
            for node in ast.walk(
                ast.parse(textwrap.dedent(inspect.getsource(getattr(patches, function))))
            )
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "swarm")
            and not node.attr.startswith("_gate_")  # ours, kept on libp2p's objects
        }
        assert used <= names, (function, used - names)


def test_installing_changes_only_declared_names(fresh: dict[str, Any]) -> None:
    declared = {
        f"{owner}.{name}"
        for owners in _declarations().values()
        for owner, names in owners.items()
        for name in names
    }
    changed = set(fresh["changed"])
    assert changed and changed <= declared, changed - declared


async def test_writers_cancelled_at_any_moment_never_cut_a_noise_message() -> None:
    # Writers of large messages (so that the socket fills and writes must wait) are cancelled
    # at random moments. A message cut between its encryption and its last byte would make
    # every later message fail to decrypt, and the connection would drop.
    a, b = new_host(), new_host()
    a.set_stream_handler(SINK, sink)
    a.set_stream_handler(ECHO, echo)
    drops: list[str] = []
    b.on_disconnected = drops.append
    chunk = b"x" * (256 << 10)
    rng = random.Random(7)

    async def writer(stream: P2PStream) -> None:
        try:
            while True:
                await stream.write(chunk)
        finally:
            await stream.reset()

    async with running(a, b):
        await connected(b, a)
        for _ in range(10):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(writer, await b.open_stream(a.peer_id, SINK))
                await anyio.sleep(rng.uniform(0.001, 0.03))
                tg.cancel_scope.cancel()
        stream = await b.open_stream(a.peer_id, ECHO)
        await write_frame(stream, b"still in step")
        with anyio.fail_after(5):
            assert await read_frame(stream, max_size=MAX) == b"still in step"
        assert b.is_connected(a.peer_id) and not drops


async def test_bodies_far_larger_than_the_window_flow_both_ways() -> None:
    # 6 MiB each way on one stream: the 256 KiB window is credited back many times over.
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, echo)
    payload = bytes(range(256)) * (6 << 12)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, ECHO)
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(write_frame, stream, payload)
                assert await read_frame(stream, max_size=MAX) == payload
            await write_frame(stream, b"")
            assert await read_frame(stream, max_size=MAX) == b""


async def test_a_small_exchange_costs_one_yamux_frame_each_way() -> None:
    # No window update per read, so on a warm stream a request and its reply are one DATA
    # frame each: one Noise message and one syscall at each end.
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, echo)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, ECHO)
        await write_frame(stream, b"warm")
        assert await read_frame(stream, max_size=MAX) == b"warm"
        frames: list[tuple[int, int]] = []  # (type, stream id) written by either end
        for conn in {_yamux(stream), _yamux_of_peer(a, b.peer_id)}:
            _count_frames(conn, frames)
        for i in range(20):
            await stream.write(encode_frame(b"request %d" % i))
            assert await read_frame(stream, max_size=MAX) == b"request %d" % i
        data_frames = [f for f in frames if f[0] == 0]
        assert len(data_frames) == 40
        assert not [f for f in frames if f[0] == 1]  # no window update at all


async def test_a_write_to_a_closed_connection_fails_as_a_stream_error() -> None:
    a, b = new_host(), new_host()
    a.set_stream_handler(SINK, sink)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, SINK)
        await a.disconnect(b.peer_id)
        with anyio.fail_after(5), pytest.raises(StreamError):
            while True:
                await stream.write(b"y" * 65536)


def _yamux(stream: P2PStream) -> Yamux:
    conn = stream._stream.muxed_conn
    assert isinstance(conn, Yamux)
    return conn


def _yamux_of_peer(host: object, peer_id: str) -> Yamux:
    network = host._host.get_network()  # type: ignore[attr-defined]
    (conn,) = [c for pid, cs in network.connections.items() if str(pid) == peer_id for c in cs]
    assert isinstance(conn.muxed_conn, Yamux)
    return conn.muxed_conn


def _count_frames(conn: Yamux, into: list[tuple[int, int]]) -> None:
    """Record (type, stream id) of each frame this connection writes, pings left out."""
    write_frame_ = conn._write_frame

    async def counting(data: bytes) -> None:
        _, kind, _, stream_id, _ = struct.unpack("!BBHII", data[:12])
        if stream_id:
            into.append((kind, stream_id))
        await write_frame_(data)

    conn._write_frame = counting  # type: ignore[method-assign]
