"""The controller: owns the accepted spec, its generation and history, and drives reconciles."""

from __future__ import annotations

__all__ = ("Controller",)

import difflib
import errno
import logging
import os
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any, Generic

import anyio
from anyio.abc import TaskStatus

from gate_runner import __version__
from gate_runner.components.base import Component
from gate_runner.errors import ConflictError, GateError, SpecError, SpecIssue
from gate_runner.events import EventBus
from gate_runner.identity import Identity
from gate_runner.reconcile.kind import Assembly, S
from gate_runner.reconcile.planner import Key
from gate_runner.reconcile.supervisor import Supervisor
from gate_runner.spec import LoadedSpec, SpecKind, canonical_yaml, load_spec, spec_digest
from gate_runner.spec.write import atomic_write, render_update
from gate_runner.spec.yamlsafe import read_limited
from gate_runner.state import StateDB
from gate_runner.state.db import now_rfc3339

log = logging.getLogger(__name__)


class Controller(Generic[S]):
    """Accepts or rejects specs of one kind, numbers them, records them, and converges the
    kind's components to the latest.

    Every path that changes the spec (file edit, ``spec.apply``, rollback, resync) goes
    through ``_record`` under one lock. Reconciling runs in its own loop (``run``), kicked
    after each accepted spec, so a caller that waits for convergence never holds the lock
    while components stop and start. The controller is the control plane's NodeHandle, so it
    exists before the components, which it is handed when it starts to run.
    """

    def __init__(
        self,
        *,
        boot: LoadedSpec[S],
        kind: SpecKind[S],
        source: Path | None,
        state: StateDB,
        identity: Identity,
        supervisor: Supervisor,
        env: Mapping[str, str] | None = None,
        events: EventBus | None = None,
    ) -> None:
        self._kind = kind
        self._events = events
        self._current = boot
        self._source = source
        self._state = state
        self._identity = identity
        self._supervisor = supervisor
        self._env = os.environ if env is None else env
        self._assembly: Assembly[S] = Assembly(components=())
        self.generation = 0
        self.observed_generation = 0
        self.last_error: SpecError | GateError | None = None
        self.last_applied_at: str | None = None
        self._lock = anyio.Lock()
        self._kick = anyio.Event()
        self._reconciled = anyio.Event()
        self.shutdown_requested = anyio.Event()

    @property
    def spec(self) -> S:
        return self._current.spec

    @property
    def source(self) -> Path | None:
        return self._source

    # -- the reconcile loop -----------------------------------------------------------

    async def run(
        self, assembly: Assembly[S], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Record the boot spec, converge ``assembly``'s components to it, signal ready, then
        reconcile on every kick."""
        self._assembly = assembly
        async with self._lock:
            last = await self._state.last_entry()
            digest = spec_digest(self._current.document)
            if last is not None and last.digest == digest:
                self.generation = last.generation
                self.last_applied_at = last.applied_at
            else:
                await self._record(self._current, origin="startup")
        await self._reconcile_once()
        task_status.started()
        while True:
            await self._kick.wait()
            self._kick = anyio.Event()
            await self._reconcile_once()

    def kick(self) -> None:
        """Ask for a reconcile pass: level-triggered, so extra kicks are harmless."""
        self._kick.set()

    async def _reconcile_once(self) -> None:
        generation = self.generation
        spec = self.spec
        for service in self._assembly.services:
            service.configure(spec)
        desired: dict[Key, tuple[Component[S], Hashable]] = {}
        for component in self._assembly.components:
            for name, slice_ in component.desired(spec).items():
                desired[(component.kind, name)] = (component, slice_)
        the_plan = await self._supervisor.apply(desired, generation=generation)
        if not the_plan.empty:
            log.info(
                "reconciled generation %d: %d stopped, %d updated, %d started",
                generation,
                len(the_plan.stops),
                len(the_plan.updates),
                len(the_plan.starts),
                extra={"generation": generation},
            )
        self.observed_generation = generation
        self._reconciled.set()
        self._reconciled = anyio.Event()

    async def wait_observed(self, generation: int) -> None:
        while self.observed_generation < generation:
            await self._reconciled.wait()

    # -- accepting specs --------------------------------------------------------------

    def _load(self, data: str | bytes, *, source: str) -> LoadedSpec[S]:
        loaded = load_spec(
            data, source=source, env=self._env, kind=self._kind, base_dir=self._base_dir()
        )
        spec = loaded.spec
        # dataDir and the key are where state.db and the identity live: moving them under a
        # running node would split its history, so they change only across a restart.
        restart_hint = "stop the node with `gate down`, then `gate up` with the new spec"
        issues = []
        if spec.data_dir != self.spec.data_dir:
            issues.append(
                SpecIssue(
                    f"cannot change while the node runs (it uses {self.spec.data_dir})",
                    path="spec.dataDir",
                    source=source,
                    hint=restart_hint,
                )
            )
        if spec.key_path != self.spec.key_path:
            issues.append(
                SpecIssue(
                    f"cannot change while the node runs (it uses {self.spec.key_path})",
                    path="spec.identity.keyFile",
                    source=source,
                    hint=restart_hint,
                )
            )
        if issues:
            raise SpecError(issues)
        return loaded

    def _base_dir(self) -> Path | None:
        return self._source.parent if self._source is not None else None

    async def _record(self, loaded: LoadedSpec[S], *, origin: str) -> None:
        entry = await self._state.append(
            origin=origin,
            source=loaded.source,
            digest=spec_digest(loaded.document),
            document=canonical_yaml(loaded.document),
        )
        self._current = loaded
        self.generation = entry.generation
        self.last_applied_at = entry.applied_at
        self.last_error = None
        if self._events is not None:
            self._events.publish(
                "spec.applied",
                {
                    "generation": entry.generation,
                    "origin": origin,
                    "source": loaded.source,
                    "appliedAt": entry.applied_at,
                },
            )
        log.info(
            "accepted spec generation %d from %s",
            entry.generation,
            loaded.source,
            extra={"generation": entry.generation, "origin": origin},
        )

    def _reject(self, error: SpecError | GateError, *, origin: str) -> None:
        self.last_error = error
        if self._events is not None:
            issues = error.issues if isinstance(error, SpecError) else []
            self._events.publish(
                "spec.rejected",
                {
                    "generation": self.generation,
                    "origin": origin,
                    "error": str(error),
                    "issues": [i.to_dict() for i in issues],
                },
            )
        log.error(
            "rejected spec (%s); still running generation %d:\n%s",
            origin,
            self.generation,
            error,
            extra={"generation": self.generation, "origin": origin},
        )

    def _diff(self, document: Mapping[str, Any]) -> str:
        old = canonical_yaml(self._current.document).splitlines(keepends=True)
        new = canonical_yaml(document).splitlines(keepends=True)
        return "".join(
            difflib.unified_diff(old, new, f"generation {self.generation}", "proposed", n=3)
        )

    async def reload_file(self, *, origin: str = "file") -> None:
        """Re-read the source file (watcher or resync). A bad file is rejected and reported;
        the node keeps running its last good spec."""
        if self._source is None:
            return
        async with self._lock:
            source = self._source
            try:
                data = await anyio.to_thread.run_sync(read_limited, source)
                loaded = self._load(data, source=str(source))
            except SpecError as e:
                if isinstance(e.__cause__, FileNotFoundError):
                    self._reject(
                        GateError(
                            f"{source} was deleted; still running generation {self.generation}",
                            hint="restore it; `gate get --control ADDR > gate.yaml` prints "
                            "the running spec (token from GATE_TOKEN)",
                        ),
                        origin=origin,
                    )
                else:
                    self._reject(e, origin=origin)
                return
            if spec_digest(loaded.document) == spec_digest(self._current.document):
                self.last_error = None
                return
            await self._record(loaded, origin=origin)
        self.kick()

    async def apply(
        self,
        text: str,
        *,
        source: str,
        expected_generation: int | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        async with self._lock:
            if expected_generation is not None and expected_generation != self.generation:
                raise ConflictError(expected=expected_generation, current=self.generation)
            try:
                loaded = self._load(text, source=source)
            except SpecError as e:
                if not dry_run:
                    self._reject(e, origin="apply")
                raise
            diff = self._diff(loaded.document)
            unchanged = spec_digest(loaded.document) == spec_digest(self._current.document)
            if dry_run or unchanged:
                return {
                    "generation": self.generation,
                    "changed": False if unchanged else True,
                    "dryRun": dry_run,
                    "diff": diff,
                }
            await self._write_source(loaded.document)
            await self._record(loaded, origin="apply")
            generation = self.generation
        self.kick()
        return {"generation": generation, "changed": True, "dryRun": False, "diff": diff}

    async def rollback(self, generation: int | None = None) -> dict[str, Any]:
        if generation is None:
            entries = await self._state.entries(limit=2)
            if len(entries) < 2:
                raise GateError("there is no earlier generation to roll back to")
            generation = entries[1].generation
        entry = await self._state.entry(generation)
        if entry is None:
            raise GateError(
                f"generation {generation} is not in the history",
                hint="list generations with `gate history`",
            )
        result = await self.apply(entry.document, source=f"generation {generation}")
        result["rolledBackTo"] = generation
        return result

    async def _write_source(self, document: Mapping[str, Any]) -> None:
        """Write the accepted document back to gate.yaml so the file stays the source of truth.
        Comments survive where the change did not touch them."""
        if self._source is None:
            return
        source = self._source

        def write() -> None:
            try:
                old_text = source.read_text(encoding="utf-8")
            except (FileNotFoundError, UnicodeDecodeError):
                old_text = ""
            atomic_write(source, render_update(old_text, document))

        try:
            await anyio.to_thread.run_sync(write)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                quota = " (disk quota exceeded)" if e.errno == errno.EDQUOT else ""
                error = GateError(
                    f"cannot write {source}: no space left on device{quota};"
                    " the spec was not changed",
                    hint=f"free space on the filesystem that holds {source.parent}"
                    f"{' or raise the quota' if quota else ''}, then apply again",
                )
            else:
                error = GateError(
                    f"cannot write {source}: {e.strerror}; the spec was not changed",
                    hint="make the file and its directory writable by the node's user",
                )
            # The caller gets the error; the node's log keeps it for whoever was not the caller.
            log.error("%s", error, extra={"generation": self.generation, "origin": "apply"})
            raise error from e

    # -- NodeHandle -------------------------------------------------------------------

    def spec_document(self) -> dict[str, Any]:
        return dict(self._current.document)

    async def validate(self, text: str, *, source: str) -> dict[str, Any]:
        loaded = self._load(text, source=source)
        return {"valid": True, "kind": loaded.kind, "migratedFrom": loaded.migrated_from}

    async def diff(self, text: str, *, source: str) -> dict[str, Any]:
        loaded = self._load(text, source=source)
        return {"generation": self.generation, "diff": self._diff(loaded.document)}

    async def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [e.to_dict() for e in await self._state.entries(limit)]

    def shutdown(self) -> None:
        self.shutdown_requested.set()

    def status(self) -> dict[str, Any]:
        node_id = self._identity.node_id
        return {
            "name": self.spec.name,
            "version": __version__,
            "identity": {"peerId": node_id.peer_id, "hex": node_id.hex, "label": node_id.label},
            "spec": {
                "generation": self.generation,
                "observedGeneration": self.observed_generation,
                "source": str(self._source) if self._source else None,
                "lastError": str(self.last_error) if self.last_error else None,
                "lastAppliedAt": self.last_applied_at,
                "migratedFrom": self._current.migrated_from,
                "overrides": [
                    {"name": o.name, "path": o.path, "value": o.value}
                    for o in self._current.overrides
                ],
            },
            "components": [s.to_dict() for s in self._supervisor.statuses()],
            **self._assembly.status(),
            "time": now_rfc3339(),
        }
