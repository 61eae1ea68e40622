"""P2PHost with real libp2p hosts on loopback, in one trio run."""

from __future__ import annotations

import errno
import logging
import socket

import anyio
import pytest
from libp2p import new_host as libp2p_new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType, PrivateKey, PublicKey
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from gate_runner.errors import PermanentError, TransientError
from gate_runner.identity import Identity
from gate_runner.p2p import P2PHost, P2PStream, StreamError, StreamReset
from gate_runner.p2p.frames import read_frame, write_frame
from tests.p2p.helpers import (
    LOOPBACK,
    connected,
    fd_count,
    new_host,
    running,
    task_count,
    wait_until,
)

pytestmark = pytest.mark.anyio

ECHO = "/test/echo/1"


async def echo(stream: P2PStream, peer: str) -> None:
    while frame := await read_frame(stream, max_size=1 << 20):
        await write_frame(stream, frame)
    await write_frame(stream, b"")


def port_of(addr: str) -> int:
    return int(Multiaddr(addr).value_for_protocol("tcp"))


def port_is_free(port: int) -> bool:
    # Without SO_REUSEPORT, so a libp2p listener (which sets it) still counts as using it.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as e:
            assert e.errno == errno.EADDRINUSE
            return False
    return True


async def test_two_hosts_connect_with_the_ids_of_their_seeds_and_echo() -> None:
    seed_a, seed_b = Identity.generate().seed, Identity.generate().seed
    a = P2PHost(seed=seed_a, listen=[LOOPBACK])
    b = P2PHost(seed=seed_b, listen=[LOOPBACK])
    seen: list[tuple[str, str]] = []

    async def handler(stream: P2PStream, peer: str) -> None:
        seen.append((peer, stream.remote_peer_id))
        await echo(stream, peer)

    a.set_stream_handler(ECHO, handler)
    assert a.peer_id == Identity.from_seed(seed_a).node_id.peer_id
    assert a.peer_id.startswith("12D3KooW")
    async with running(a, b):
        assert [port_of(addr) for addr in a.listen_addrs()] != [0]
        await connected(b, a)
        assert b.is_connected(a.peer_id) and b.connected_peers() == [a.peer_id]
        await wait_until(lambda: a.connected_peers() == [b.peer_id])
        # Any accepted form of the id works: the hex form here.
        stream = await b.open_stream(Identity.from_seed(seed_a).node_id.hex, ECHO)
        assert stream.remote_peer_id == a.peer_id
        for payload in (b"one", b"x" * 300_000):
            await write_frame(stream, payload)
            assert await read_frame(stream, max_size=1 << 20) == payload
        await write_frame(stream, b"")
        assert await read_frame(stream, max_size=1) == b""
        await stream.aclose()
    # The handler was told the Noise-authenticated id of the dialer.
    assert seen == [(b.peer_id, b.peer_id)]


async def test_callbacks_fire_once_per_peer_and_disconnect_resets_streams() -> None:
    a, b = new_host(), new_host()
    events: list[tuple[str, str]] = []
    a.on_connected = lambda peer: events.append(("up", peer))
    a.on_disconnected = lambda peer: events.append(("down", peer))
    a.set_stream_handler(ECHO, echo)
    async with running(a, b):
        await connected(b, a)
        await connected(b, a)  # already connected: a no-op, no second connection
        stream = await b.open_stream(a.peer_id, ECHO)
        await wait_until(lambda: len(events) == 1)
        await b.disconnect(a.peer_id)
        await wait_until(lambda: len(events) == 2)
        assert not b.is_connected(a.peer_id)
        with pytest.raises(StreamError):
            await write_frame(stream, b"after")
            await read_frame(stream, max_size=10)
        with pytest.raises(TransientError, match="not connected"):
            await b.open_stream(a.peer_id, ECHO)
    assert events == [("up", b.peer_id), ("down", b.peer_id)]


async def test_a_handler_that_raises_resets_its_stream_and_the_host_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = new_host(), new_host()

    async def broken(stream: P2PStream, peer: str) -> None:
        await read_frame(stream, max_size=10)
        raise RuntimeError("handler bug")

    a.set_stream_handler("/test/broken/1", broken)
    a.set_stream_handler(ECHO, echo)
    async with running(a, b):
        await connected(b, a)
        stream = await b.open_stream(a.peer_id, "/test/broken/1")
        await write_frame(stream, b"go")
        with pytest.raises(StreamReset):
            await read_frame(stream, max_size=10)
        good = await b.open_stream(a.peer_id, ECHO)
        await write_frame(good, b"still here")
        assert await read_frame(good, max_size=100) == b"still here"
    assert any("handler bug" in r.getMessage() or r.exc_info for r in caplog.records)


async def test_allow_peer_closes_connections_and_refuses_streams_of_other_peers() -> None:
    trusted, stranger = new_host(), new_host()
    a = new_host(allow_peer=lambda peer: peer == trusted.peer_id)
    up: list[str] = []
    handled: list[str] = []
    a.on_connected = up.append

    async def handler(stream: P2PStream, peer: str) -> None:
        handled.append(peer)
        await echo(stream, peer)

    a.set_stream_handler(ECHO, handler)
    async with running(a, trusted, stranger):
        await connected(trusted, a)
        # The stranger's dial succeeds from its side; a closes the connection at once.
        try:
            await connected(stranger, a)
            stream = await stranger.open_stream(a.peer_id, ECHO)
            await write_frame(stream, b"hi")
            await read_frame(stream, max_size=10)
        except (StreamError, TransientError):
            pass
        await wait_until(lambda: not stranger.is_connected(a.peer_id))
        assert a.connected_peers() == [trusted.peer_id]
        # Dialing a refused peer is no connection either.
        with pytest.raises(TransientError, match="closed as soon as it was made"):
            await a.connect(stranger.peer_id, stranger.listen_addrs())
        stream = await trusted.open_stream(a.peer_id, ECHO)
        await write_frame(stream, b"hi")
        assert await read_frame(stream, max_size=10) == b"hi"
    assert up == [trusted.peer_id]
    assert handled == [trusted.peer_id]


class _ForgedKey(PrivateKey):
    """The attacker's own private key, presenting the victim's public key as its own."""

    def __init__(self, real: PrivateKey, claimed: PublicKey) -> None:
        self._real, self._claimed = real, claimed

    def to_bytes(self) -> bytes:
        return self._real.to_bytes()

    def get_type(self) -> KeyType:
        return self._real.get_type()

    def sign(self, data: bytes) -> bytes:
        return self._real.sign(data)

    def get_public_key(self) -> PublicKey:
        return self._claimed


async def test_a_plaintext_dialer_claiming_a_trusted_id_cannot_connect() -> None:
    trusted_seed = Identity.generate().seed
    trusted_id = Identity.from_seed(trusted_seed).node_id.peer_id
    a = new_host(allow_peer=lambda peer: peer == trusted_id)
    up: list[str] = []
    a.on_connected = up.append
    # The attacker knows only the trusted node's public key, not its seed.
    victim_public = create_new_key_pair(trusted_seed).public_key
    forged_key = _ForgedKey(
        create_new_key_pair(Identity.generate().seed).private_key, victim_public
    )
    forged = KeyPair(forged_key, victim_public)
    attacker = libp2p_new_host(
        key_pair=forged,
        sec_opt={PLAINTEXT_PROTOCOL_ID: InsecureTransport(forged)},
        muxer_opt={YAMUX_PROTOCOL_ID: Yamux},
    )
    assert str(attacker.get_id()) == trusted_id
    # Control: a libp2p host with the default security options believes the forgery.
    naive = libp2p_new_host(key_pair=create_new_key_pair(Identity.generate().seed))
    listen = [Multiaddr(LOOPBACK)]
    async with running(a), attacker.run(listen), naive.run(listen):
        with anyio.fail_after(10):
            await attacker.connect(PeerInfo(naive.get_id(), naive.get_transport_addrs()))
        assert trusted_id in [str(p) for p in naive.get_connected_peers()]

        target = PeerInfo(ID.from_base58(a.peer_id), [Multiaddr(x) for x in a.listen_addrs()])
        with pytest.raises(SwarmException, match="unable to connect"), anyio.fail_after(10):
            await attacker.connect(target)
        await anyio.sleep(0.2)
        assert trusted_id not in a.connected_peers()
        await attacker.close()
        await naive.close()
    assert up == []


async def test_a_port_in_use_is_a_transient_error_before_listening() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        host = P2PHost(seed=Identity.generate().seed, listen=[f"/ip4/127.0.0.1/tcp/{port}"])
        with pytest.raises(TransientError, match=f"/ip4/127.0.0.1/tcp/{port} is already in use"):
            await host.run()


async def test_a_second_host_on_a_p2p_port_is_refused_despite_so_reuseport() -> None:
    a = new_host()
    async with running(a):
        addr = a.listen_addrs()[0]
        b = P2PHost(seed=Identity.generate().seed, listen=[addr])
        with pytest.raises(TransientError, match="already in use"):
            await b.run()


@pytest.mark.parametrize(
    ("listen", "match"),
    [
        ("/ip4/127.0.0.1/udp/4001/quic-v1", "not plain TCP"),
        ("/dns4/localhost/tcp/4001", "not plain TCP"),
        ("not a multiaddr", "not a multiaddr"),
    ],
)
def test_only_plain_tcp_listen_addresses_are_accepted(listen: str, match: str) -> None:
    with pytest.raises(PermanentError, match=match):
        P2PHost(seed=Identity.generate().seed, listen=[listen])


async def test_an_address_not_of_this_machine_is_a_permanent_error() -> None:
    host = P2PHost(seed=Identity.generate().seed, listen=["/ip4/192.0.2.1/tcp/41145"])
    with pytest.raises(PermanentError, match="cannot listen"):
        await host.run()


async def test_dialing_nothing_fails_fast_with_the_reason() -> None:
    a = new_host()
    async with running(a):
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        addr = f"/ip4/127.0.0.1/tcp/{port.getsockname()[1]}"
        port.close()
        other = Identity.generate().node_id.peer_id
        with anyio.fail_after(3), pytest.raises(TransientError, match="cannot connect"):
            await a.connect(other, [addr])
        # No 60 s negative cache: the next attempt dials again (and fails again, fast).
        with anyio.fail_after(3), pytest.raises(TransientError, match="cannot connect"):
            await a.connect(other, [addr])
        with pytest.raises(PermanentError, match="names peer"):
            await a.connect(other, [f"{addr}/p2p/{a.peer_id}"])


async def test_dialing_the_wrong_peer_id_fails() -> None:
    a, b = new_host(), new_host()
    async with running(a, b):
        impostor = Identity.generate().node_id.peer_id
        with pytest.raises(TransientError, match="cannot connect"):
            await b.connect(impostor, a.listen_addrs())
        assert b.connected_peers() == []


async def test_a_failed_dial_is_raised_not_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """py-libp2p logs a refused dial and a wrong peer at ERROR; connect() raises both, and
    the caller (which redials forever) decides how loud to be."""
    a, b = new_host(), new_host()
    async with running(a, b):
        port = socket.socket()
        port.bind(("127.0.0.1", 0))
        closed = f"/ip4/127.0.0.1/tcp/{port.getsockname()[1]}"
        port.close()
        other = Identity.generate().node_id.peer_id
        with caplog.at_level(logging.DEBUG):
            with pytest.raises(TransientError, match="all attempts to connect"):
                await a.connect(other, [closed])
            with pytest.raises(TransientError, match="does not correspond"):
                await a.connect(other, b.listen_addrs())
            logging.getLogger("libp2p.network.swarm").error("another error")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["another error"]  # libp2p's other errors still get through


async def test_churn_leaks_no_tasks_and_no_fds() -> None:
    a, b = new_host(), new_host()
    a.set_stream_handler(ECHO, echo)
    async with running(a, b):
        # Warm up once: first-use caches and lazily started libp2p pieces are not leaks.
        for _ in range(2):
            await connected(b, a)
            await b.disconnect(a.peer_id)
        await wait_until(lambda: not a.connected_peers())
        await anyio.sleep(0.3)
        tasks, fds = task_count(), fd_count()
        for _ in range(50):
            await connected(b, a)
            stream = await b.open_stream(a.peer_id, ECHO)
            await write_frame(stream, b"ping")
            assert await read_frame(stream, max_size=10) == b"ping"
            await b.disconnect(a.peer_id)
        await wait_until(lambda: not a.connected_peers() and not b.connected_peers())
        # Slack: identify runs in short-lived system tasks and closing a connection sleeps
        # 0.1 s in libp2p, so a few may still be finishing; a leak would be >= 50.
        await wait_until(lambda: task_count() <= tasks + 2 and fd_count() <= fds + 2, within=5)


async def test_cancelled_run_closes_the_host_and_frees_the_port() -> None:
    before_tasks, before_fds = task_count(), fd_count()
    a, b = new_host(), new_host()
    down: list[str] = []
    b.on_disconnected = down.append
    async with anyio.create_task_group() as outer, running(b):
        async with anyio.create_task_group() as tg:
            await tg.start(a.run)
            port = port_of(a.listen_addrs()[0])
            await connected(b, a)
            assert not port_is_free(port)
            tg.cancel_scope.cancel()
        assert a.listen_addrs() == [] and a.connected_peers() == []
        assert port_is_free(port)
        await wait_until(lambda: down == [a.peer_id])
        outer.cancel_scope.cancel()
    await wait_until(lambda: task_count() <= before_tasks and fd_count() <= before_fds)


async def test_stopping_the_host_cancels_running_handlers() -> None:
    a, b = new_host(), new_host()
    entered, cancelled = anyio.Event(), anyio.Event()

    async def stuck(stream: P2PStream, peer: str) -> None:
        entered.set()
        try:
            await anyio.sleep_forever()  # e.g. waiting on a slow provider
        finally:
            cancelled.set()

    a.set_stream_handler("/test/stuck/1", stuck)
    async with running(b):
        async with anyio.create_task_group() as tg:
            await tg.start(a.run)
            await connected(b, a)
            stream = await b.open_stream(a.peer_id, "/test/stuck/1")
            await write_frame(stream, b"go")
            await entered.wait()
            stopping = anyio.current_time()
            tg.cancel_scope.cancel()
        # Stopped by cancellation, not by the 5 s bound on closing.
        assert anyio.current_time() - stopping < 3
        assert cancelled.is_set()
        with pytest.raises(StreamError):
            await read_frame(stream, max_size=10)


async def test_libp2p_logs_reach_our_handlers(caplog: pytest.LogCaptureFixture) -> None:
    assert logging.getLogger("libp2p").propagate
    with caplog.at_level(logging.WARNING):
        logging.getLogger("libp2p.network.swarm").warning("probe")
    assert "probe" in caplog.text
