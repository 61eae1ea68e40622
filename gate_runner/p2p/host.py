"""``P2PHost``: the node's one py-libp2p host (TCP, Noise, yamux): its lifecycle, its
connections and its stream handlers. The settings follow DESIGN.md section 6.
"""

from __future__ import annotations

__all__ = ("P2PHost", "StreamHandler")

import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import anyio
import libp2p
from anyio.abc import TaskStatus
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.peer.id import ID
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from multiaddr import Multiaddr

from gate_runner.errors import PermanentError, TransientError
from gate_runner.identity import Identity, NodeId
from gate_runner.listen import bind_socket
from gate_runner.p2p import patches
from gate_runner.p2p.frames import EndOfStream, FrameError
from gate_runner.p2p.patches import _root_cause
from gate_runner.p2p.stream import P2PStream, StreamError

log = logging.getLogger("gate.p2p")

StreamHandler = Callable[[P2PStream, str], Awaitable[None]]

_LISTEN_HINT: Final = "use /ip4/<address>/tcp/<port> or /ip6/<address>/tcp/<port>"
_LISTEN_WHAT: Final = "spec.listen.p2p"
# host.close() closes each connection in turn and libp2p sleeps 0.1 s twice per close; we close
# them concurrently first, so this only bounds a wedged socket.
_CLOSE_TIMEOUT: Final = 5.0
_DIAL_TIMEOUT: Final = 10.0


def _parse_peer_id(text: str) -> ID:
    try:
        return ID(NodeId.parse(text).peer_id_bytes())
    except ValueError as e:
        raise PermanentError(f"{text!r} is not a peer id: {e}") from e


def _parse_listen(text: str) -> tuple[Multiaddr, socket.AddressFamily, str, int]:
    try:
        maddr = Multiaddr(text)
        names = [p.name for p in maddr.protocols()]
    except Exception as e:  # multiaddr raises several unrelated classes for bad text
        raise PermanentError(
            f"listen address {text!r} is not a multiaddr", hint=_LISTEN_HINT
        ) from e
    if names not in (["ip4", "tcp"], ["ip6", "tcp"]):
        # new_host picks transports from the listen addresses: only plain TCP may get through.
        raise PermanentError(f"listen address {text!r} is not plain TCP", hint=_LISTEN_HINT)
    family = socket.AF_INET if names[0] == "ip4" else socket.AF_INET6
    host, port = maddr.value_for_protocol(names[0]), maddr.value_for_protocol("tcp")
    return maddr, family, str(host), int(port)


def _check_port_free(text: str, family: socket.AddressFamily, host: str, port: int) -> None:
    """Bind (without SO_REUSEPORT) and release, to find a port another process listens on.

    libp2p's TCP listener sets SO_REUSEPORT, so listening on a port that another node already
    holds succeeds silently and the kernel splits the connections between the two.
    SO_REUSEADDR is set so that our own connections in TIME_WAIT from a previous run do not
    count as "in use". A process may still take the port between this check and the listen.
    """
    if port == 0:
        return
    bind_socket(family, host, port, shown=f"P2P listen address {text}", what=_LISTEN_WHAT).close()


class _Notifee(INotifee):
    """Forwards libp2p's connection events to the owning ``P2PHost``."""

    def __init__(self, owner: P2PHost) -> None:
        self._owner = owner

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        await self._owner._connection_opened(conn)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        self._owner._connection_closed(conn)

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None


class P2PHost:
    """One libp2p host built from the node's 32-byte Ed25519 seed: the same identity as the
    node's TLS certificate and DNS label (DESIGN.md section 5).

    The host does not decide trust. Handlers get the authenticated remote peer id, and
    ``allow_peer`` (when set) is asked on every new connection, which is closed when it says
    no, and again on every inbound stream, since streams can arrive before that close.
    ``on_connected`` / ``on_disconnected`` are called (synchronously, from libp2p's event
    task) when a peer gets its first connection and loses its last one.
    """

    def __init__(
        self,
        *,
        seed: bytes,
        listen: Sequence[str],
        allow_peer: Callable[[str], bool] | None = None,
        dial_timeout: float = _DIAL_TIMEOUT,
    ) -> None:
        self._seed = seed
        self.peer_id: str = Identity.from_seed(seed).node_id.peer_id
        self._listen = [_parse_listen(text) for text in listen]
        if not self._listen:
            raise PermanentError("no P2P listen address", hint=_LISTEN_HINT)
        self.allow_peer = allow_peer
        self.on_connected: Callable[[str], None] | None = None
        self.on_disconnected: Callable[[str], None] | None = None
        self.dial_timeout = dial_timeout
        self._handlers: dict[str, StreamHandler] = {}
        self._host: Any = None  # the libp2p BasicHost while run() is serving
        self._peer_conns: dict[str, set[int]] = {}  # peer -> ids of its announced connections
        self._dial_locks: dict[str, anyio.Lock] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Listen, report ready through ``task_status``, and serve until cancelled.

        Raises ``TransientError`` when a listen port is taken, ``PermanentError`` when an
        address cannot be listened on at all. The libp2p host is always closed on the way out.
        """
        for maddr, family, host_ip, port in self._listen:
            _check_port_free(str(maddr), family, host_ip, port)
        host = self._build()
        stop = anyio.CancelScope()
        failure: Exception | None = None
        try:
            async with anyio.create_task_group() as tg:
                try:
                    await tg.start(self._serve, host, stop)
                    task_status.started()
                    await anyio.sleep_forever()
                except Exception as e:  # raised below, not wrapped in the task group's group
                    failure = e
                finally:
                    stop.cancel()  # the shielded _serve ends only through this
        finally:
            self._host = None
            self._peer_conns.clear()
            self._dial_locks.clear()
        if failure is not None:
            raise failure

    async def _serve(
        self, host: Any, stop: anyio.CancelScope, *, task_status: TaskStatus[None]
    ) -> None:
        # Shielded: when run() is cancelled, libp2p's own tasks (the swarm's, the listener's)
        # must not see it, or they die halfway through closing connections and leave their
        # sockets open. Only `stop` ends the serving part; the close below then runs in full.
        with anyio.CancelScope(shield=True):
            async with host.run([maddr for maddr, *_ in self._listen]):
                try:
                    with stop:
                        self._check_listening(host)
                        await self._quiet_swarm(host)
                        self._host = host
                        log.info("p2p host %s listening on %s", self.peer_id, self.listen_addrs())
                        task_status.started()
                        await anyio.sleep_forever()
                finally:
                    self._host = None
                    # Without close() the listener (a trio system task) keeps accepting after
                    # run() returns, leaking 3 tasks and ~1.5 fds per cycle (DESIGN.md 6).
                    with anyio.move_on_after(_CLOSE_TIMEOUT):
                        await self._close_connections(host)
                        await host.close()

    def _build(self) -> Any:
        key_pair = create_new_key_pair(self._seed)
        if str(ID.from_pubkey(key_pair.public_key)) != self.peer_id:
            raise PermanentError("libp2p derived another peer id from the node's seed")
        # Noise only: libp2p's defaults also offer /plaintext/2.0.0, where a dialer was shown
        # to impersonate any peer id knowing only its public key (DESIGN.md 6).
        noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
        config = ConnectionConfig(
            # The default (3) makes every dial wait out a fixed 250 ms happy-eyeballs delay.
            max_connections_per_peer=1,
            # The auto-connector dials peers from the peerstore (midway between the watermarks,
            # so 150 by default) with no regard for trust; Gate dials whom the spec names.
            min_connections=0,
            low_watermark=0,
        )
        host = libp2p.new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL_ID: noise},
            muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
            listen_addrs=[maddr for maddr, *_ in self._listen],
            connection_config=config,
        )
        swarm: Any = host.get_network()
        # One attempt per connect(): the owner retries with its own backoff, and libp2p's
        # retries would hold a refused dial for ~0.7 s.
        swarm.retry_config = RetryConfig(max_retries=0)
        # The one place libp2p gets patched (DESIGN.md 6): on its classes the first time, and
        # on this swarm: no automatic Identify, no task kept per closed inbound connection.
        patches.install(swarm)
        swarm.register_notifee(_Notifee(self))
        for protocol, handler in self._handlers.items():
            host.set_stream_handler(TProtocol(protocol), self._dispatcher(protocol, handler))
        return host

    def _check_listening(self, host: Any) -> None:
        # BasicHost.run() ignores the result of listen(): a failed bind is only a debug line.
        listening = host.get_network().listeners
        for maddr, *_ in self._listen:
            if str(maddr) not in listening:
                raise TransientError(
                    f"could not listen on {maddr}",
                    hint=f"check that the address belongs to this machine ({_LISTEN_WHAT})",
                )

    async def _quiet_swarm(self, host: Any) -> None:
        # The swarm starts its auto-connector before listen() returns; stopping it ends its
        # periodic task and makes the disconnect-triggered reconnects no-ops.
        await host.get_network().auto_connector.stop()

    async def _close_connections(self, host: Any) -> None:
        async def close(conn: INetConn) -> None:
            try:
                await conn.close()
            except (BaseLibp2pError, OSError) as e:
                log.debug("closing a connection to %s: %s", conn.muxed_conn.peer_id, e)

        conns = [c for cs in list(host.get_network().connections.values()) for c in cs]
        async with anyio.create_task_group() as tg:
            for conn in conns:
                tg.start_soon(close, conn)

    def listen_addrs(self) -> list[str]:
        """The addresses listened on, with the real ports where port 0 was asked for."""
        if self._host is None:
            return []
        return [str(addr) for addr in self._host.get_transport_addrs()]

    # -- streams -----------------------------------------------------------------------------

    def set_stream_handler(self, protocol: str, handler: StreamHandler) -> None:
        """Serve ``protocol``: ``handler(stream, remote_peer_id)`` runs for each inbound stream.

        It runs in libp2p's per-stream task, inside ``run()``'s task tree, so it is cancelled
        when the host stops. When it returns the stream is closed; when it raises, the stream
        is reset and the error logged: a handler never takes the host down.
        """
        self._handlers[protocol] = handler
        if self._host is not None:
            self._host.set_stream_handler(TProtocol(protocol), self._dispatcher(protocol, handler))

    def _dispatcher(
        self, protocol: str, handler: StreamHandler
    ) -> Callable[[INetStream], Awaitable[None]]:
        async def dispatch(net_stream: INetStream) -> None:
            remote = str(net_stream.muxed_conn.peer_id)
            stream = P2PStream(net_stream, remote_peer_id=remote, protocol=protocol)
            if not self._allowed(remote):
                log.info("refused a %s stream from %s: peer not allowed", protocol, remote)
                await stream.reset()
                return
            ok = False
            try:
                await handler(stream, remote)
                ok = True
            except (StreamError, EndOfStream) as e:
                log.debug("%s stream from %s ended: %s", protocol, remote, e)
            except FrameError as e:
                log.warning("peer %s sent a malformed %s frame: %s", remote, protocol, e)
            except Exception:
                log.exception("the %s handler failed for peer %s", protocol, remote)
            finally:
                # Also on cancellation, which propagates: the reset is shielded.
                if ok:
                    await stream.aclose()
                else:
                    await stream.reset()

        return dispatch

    async def open_stream(self, peer_id: str, protocol: str) -> P2PStream:
        """Open a stream to a connected peer; ``StreamError`` if not connected or the peer
        does not serve ``protocol``. Costs 2 round trips of multistream-select (4 ms against
        0.5 ms for an exchange on an open stream, bench/p2p_link.py): reuse streams."""
        host = self._require_host()
        pid = _parse_peer_id(peer_id)
        if not self.is_connected(peer_id):
            # host.new_stream would dial from the peerstore; connecting is the owner's call.
            raise StreamError(f"not connected to peer {peer_id}", hint="connect() first")
        try:
            net_stream = await host.new_stream(pid, [TProtocol(protocol)])
        except (BaseLibp2pError, OSError) as e:
            raise StreamError(
                f"cannot open a {protocol} stream to {peer_id}: {_root_cause(e)}"
            ) from e
        return P2PStream(net_stream, remote_peer_id=str(pid), protocol=protocol)

    # -- connections -------------------------------------------------------------------------

    async def connect(self, peer_id: str, addrs: Sequence[str]) -> None:
        """Dial ``peer_id`` at each address in turn until one works, within ``dial_timeout``.

        A no-op when already connected. The Noise handshake proves the remote holds
        ``peer_id``'s key. Raises ``TransientError`` when no address worked.
        """
        host = self._require_host()
        pid = _parse_peer_id(peer_id)
        key = str(pid)
        maddrs = [self._dial_addr(text, key) for text in addrs]
        if not maddrs:
            raise PermanentError(f"no address to dial peer {key}")
        # One dial at a time per peer: two at once would make two connections.
        lock = self._dial_locks.setdefault(key, anyio.Lock())
        async with lock:
            if self.is_connected(key):
                return
            failures: list[str] = []
            with anyio.move_on_after(self.dial_timeout) as scope:
                for maddr in maddrs:
                    try:
                        # swarm.dial_addr, not host.connect(): that goes through dial_peer,
                        # which keeps failed peers in a 60 s negative cache, dials only one
                        # address per transport, and merges in stale peerstore addresses.
                        await host.get_network().dial_addr(maddr, pid)
                    except (BaseLibp2pError, OSError) as e:
                        failures.append(f"{maddr}: {_root_cause(e)}")
                        continue
                    if self.is_connected(key):
                        return
                    # allow_peer refused it, or the remote closed it at once.
                    failures.append(f"{maddr}: the connection closed as soon as it was made")
            if scope.cancelled_caught:
                failures.append(f"timed out after {self.dial_timeout:g} s")
        raise TransientError(
            f"cannot connect to peer {key}: {'; '.join(failures)}",
            hint="check that the peer is running and its address in the spec",
        )

    @staticmethod
    def _dial_addr(text: str, peer_id: str) -> Multiaddr:
        try:
            maddr = Multiaddr(text)
            named = maddr.value_for_protocol("p2p") if "/p2p/" in text else None
        except Exception as e:  # multiaddr raises several unrelated classes for bad text
            raise PermanentError(f"{text!r} is not a multiaddr") from e
        if named is not None and named != peer_id:
            raise PermanentError(f"address {text} names peer {named}, not {peer_id}")
        return maddr

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id``; its streams are reset."""
        host = self._require_host()
        try:
            await host.disconnect(_parse_peer_id(peer_id))
        except (BaseLibp2pError, OSError) as e:
            log.debug("disconnecting %s: %s", peer_id, e)

    def is_connected(self, peer_id: str) -> bool:
        """Whether ``peer_id`` has an open connection that ``allow_peer`` accepted."""
        try:
            pid = _parse_peer_id(peer_id)
        except PermanentError:
            return False
        return self._has_open_connection(pid)

    def connected_peers(self) -> list[str]:
        peers = list(self._peer_conns)
        return [peer for peer in peers if self._has_open_connection(ID.from_base58(peer))]

    def _has_open_connection(self, pid: ID) -> bool:
        # Announced connections only: libp2p lists a connection before allow_peer has seen it.
        if self._host is None or str(pid) not in self._peer_conns:
            return False
        conns = self._host.get_network().connections.get(pid, ())
        return any(not c.is_closed for c in conns)

    def _require_host(self) -> Any:
        if self._host is None:
            raise TransientError("the P2P host is not running", hint="wait for run() to start")
        return self._host

    def _allowed(self, peer_id: str) -> bool:
        if self.allow_peer is None:
            return True
        try:
            return self.allow_peer(peer_id)
        except Exception:
            log.exception("allow_peer failed for %s; refusing the peer", peer_id)
            return False

    async def _connection_opened(self, conn: INetConn) -> None:
        peer = str(conn.muxed_conn.peer_id)
        if not self._allowed(peer):
            log.info("closing the connection with %s: peer not allowed", peer)
            await conn.close()
            return
        conns = self._peer_conns.setdefault(peer, set())
        conns.add(id(conn))
        if len(conns) == 1:
            log.info("peer %s connected", peer)
            self._announce(self.on_connected, peer)

    def _connection_closed(self, conn: INetConn) -> None:
        peer = str(conn.muxed_conn.peer_id)
        conns = self._peer_conns.get(peer)
        if conns is None or id(conn) not in conns:
            return  # refused by allow_peer, never announced
        conns.discard(id(conn))
        if not conns:
            del self._peer_conns[peer]
            log.info("peer %s disconnected", peer)
            self._announce(self.on_disconnected, peer)

    @staticmethod
    def _announce(callback: Callable[[str], None] | None, peer: str) -> None:
        if callback is None:
            return
        try:
            callback(peer)
        except Exception:
            log.exception("a P2P connection callback failed for %s", peer)
