"""`gate up` and `gate relay up`: prepare the dataDir, then run one spec kind's controller,
supervisor and watchers on trio. Generic over the kind (reconcile/kind.py)."""

from __future__ import annotations

__all__ = ("Boot", "prepare", "run")

import contextlib
import functools
import gc
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic

import anyio

from gate_runner.errors import GateError
from gate_runner.events import EventBus
from gate_runner.identity import Identity
from gate_runner.logs import LogFeed
from gate_runner.metrics import Metrics
from gate_runner.reconcile.controller import Controller
from gate_runner.reconcile.kind import Kind, Runtime, S
from gate_runner.reconcile.scheduling import new_scheduler
from gate_runner.reconcile.status import ComponentStatus
from gate_runner.reconcile.supervisor import Supervisor
from gate_runner.reconcile.watcher import watch_spec_file
from gate_runner.spec import LoadedSpec, load_spec_file
from gate_runner.state import StateDB, load_or_create_token
from gate_runner.state.runtime import RuntimeFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Boot(Generic[S]):
    """Everything `gate up` sets up before the event loop starts."""

    loaded: LoadedSpec[S]
    source: Path
    identity: Identity
    state: StateDB
    token: str
    identity_created: bool

    @property
    def spec(self) -> S:
        return self.loaded.spec


def _ensure_writable_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        # A real write, not os.access: access() says yes to root on a read-only mount.
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError as e:
        raise GateError(
            f"dataDir {path} is not writable: {e.strerror}",
            hint="set spec.dataDir to a directory this user can write, or fix its permissions",
        ) from e


def prepare(spec_path: Path, kind: Kind[S]) -> Boot[S]:
    """Load and check everything that must be right before serving. Raises SpecError for a
    bad spec and GateError (IdentityError, StateError) for the rest."""
    loaded = load_spec_file(spec_path, kind=kind.spec)
    spec = loaded.spec
    _ensure_writable_dir(spec.data_dir)
    identity, created = Identity.load_or_create(spec.key_path)
    state = StateDB(spec.data_dir / "state.db")
    token = load_or_create_token(spec.data_dir / "control.token")
    return Boot(loaded, spec_path, identity, state, token, created)


def _settle_heap() -> None:
    """Once booted, move what the node has built so far (modules, schemas, libp2p's tables)
    out of the collector's way, and let the young generation grow: each request allocates a
    few hundred objects, and collections that rescan the boot heap cost the API several
    percent of its throughput (bench/gateway.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@contextlib.contextmanager
def _feeding_logs(events: EventBus) -> Iterator[LogFeed]:
    """Log records become `log` events for as long as the node runs."""
    feed = LogFeed(events)
    root = logging.getLogger()
    root.addHandler(feed)
    try:
        yield feed
    finally:
        root.removeHandler(feed)


async def run(
    boot: Boot[S],
    kind: Kind[S],
    *,
    resync_interval: float = 30.0,
    shutdown_deadline: float = 10.0,
    on_ready: Callable[[Controller[S]], None] | None = None,
) -> None:
    """Run until node.shutdown, SIGTERM or SIGINT; a second signal stops at once."""
    events = EventBus()
    events.bind()
    # The control URL actually bound, for the CLI: found even when the spec no longer loads.
    runtime_file = RuntimeFile(spec=boot.source, data_dir=boot.spec.data_dir)

    def on_change(status: ComponentStatus) -> None:
        events.publish("component.status", status.to_dict())
        ready = status.conditions.get("Ready")
        if status.kind == "control" and ready is not None and ready.status:
            cert = kind.control_certificate(controller.spec)
            runtime_file.publish(address=ready.message, tls_cert=cert)
        if ready is not None:
            log.debug(
                "component %s/%s: Ready=%s %s %s",
                status.kind,
                status.key,
                ready.status,
                ready.reason,
                ready.message,
            )

    stop_watching = anyio.Event()
    with _feeding_logs(events) as log_feed, runtime_file:
        async with new_scheduler() as scheduler, anyio.create_task_group() as tg:
            await scheduler.start_in_background()
            supervisor = Supervisor(task_group=tg, on_change=on_change)
            controller = Controller(
                boot=boot.loaded,
                kind=kind.spec,
                source=boot.source,
                state=boot.state,
                identity=boot.identity,
                supervisor=supervisor,
                events=events,
            )
            runtime = Runtime(
                spec=boot.spec,
                node=controller,
                identity=boot.identity,
                state=boot.state,
                control_token=boot.token,
                events=events,
                logs=log_feed,
                metrics=Metrics(),
                scheduler=scheduler,
                task_group=tg,
            )
            async with kind.assemble(runtime) as assembly:

                async def on_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                        async for signum in signals:
                            if controller.shutdown_requested.is_set():
                                log.warning("second signal: stopping now")
                                tg.cancel_scope.cancel()
                                return
                            log.info("received %s; shutting down", signal.Signals(signum).name)
                            controller.shutdown()

                async def resync() -> None:
                    # Level-triggered: re-read the file and re-converge even if an event was
                    # missed (bind mounts and network filesystems do not always deliver
                    # inotify events).
                    while True:
                        await anyio.sleep(resync_interval)
                        await controller.reload_file(origin="resync")
                        controller.kick()

                tg.start_soon(on_signals)
                await tg.start(functools.partial(controller.run, assembly))
                await tg.start(
                    lambda task_status: watch_spec_file(
                        boot.source,
                        controller.reload_file,
                        stop=stop_watching,
                        task_status=task_status,
                    )
                )
                tg.start_soon(resync)
                log.info(
                    "%s %s ready: generation %d, pid %d",
                    kind.spec.name.lower(),
                    boot.spec.name,
                    controller.generation,
                    os.getpid(),
                    extra={"peerId": boot.identity.node_id.peer_id},
                )
                if on_ready is not None:
                    on_ready(controller)
                _settle_heap()

                await controller.shutdown_requested.wait()
                stop_watching.set()
                with anyio.move_on_after(shutdown_deadline) as deadline:
                    await supervisor.stop_all()
                if deadline.cancelled_caught:
                    log.warning("components did not stop within %.0fs", shutdown_deadline)
                # The kind's services (the request log flushes what it holds) stop as the
                # task group is cancelled.
                tg.cancel_scope.cancel()
            await scheduler.stop()
    boot.state.close()
    log.info("%s stopped", kind.spec.name.lower())
