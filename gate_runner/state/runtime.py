"""The runtime record of a running node (the control URL it bound, its pid, its token and spec
files) in dataDir, and a pointer to it keyed by the spec file's path: the CLI finds the node
through them even when the spec no longer loads."""

from __future__ import annotations

__all__ = (
    "RUNTIME_FILE",
    "NodeRuntime",
    "RuntimeFile",
    "find_runtime",
    "pid_alive",
    "pointer_path",
    "read_runtime",
    "state_home",
)

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

RUNTIME_FILE: Final = "gate.runtime.json"


@dataclass(frozen=True, slots=True)
class NodeRuntime:
    """What a running node tells the CLI about itself."""

    pid: int
    control: str  # the URL its control server is bound to: http(s)://host:port
    token_file: Path
    spec: Path  # the spec file it watches, absolute
    data_dir: Path
    tls_cert: Path | None = None  # what verifies an https control URL (usually self-signed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "control": self.control,
            "tokenFile": str(self.token_file),
            "spec": str(self.spec),
            "dataDir": str(self.data_dir),
            "tlsCert": None if self.tls_cert is None else str(self.tls_cert),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NodeRuntime:
        """Raises KeyError, TypeError or ValueError on a record this version did not write."""
        tls_cert = data.get("tlsCert")
        return cls(
            pid=int(data["pid"]),
            control=str(data["control"]),
            token_file=Path(data["tokenFile"]),
            spec=Path(data["spec"]),
            data_dir=Path(data["dataDir"]),
            tls_cert=None if tls_cert is None else Path(tls_cert),
        )


def state_home(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/gate, else ~/.local/state/gate (a relative XDG path is ignored, as the
    XDG spec says)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_STATE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "gate"


def pointer_path(spec: Path, env: Mapping[str, str] | None = None) -> Path:
    """Where the pointer for the node running ``spec`` lives: keyed by the hash of the resolved
    path, so `-f gate.yaml` from its directory and an absolute `-f` find the same node."""
    key = hashlib.sha256(str(_resolved(spec)).encode("utf-8", "surrogateescape")).hexdigest()
    return state_home(env) / f"node-{key[:32]}.json"


def read_runtime(data_dir: Path) -> NodeRuntime | None:
    """The record in ``data_dir``, or None when there is none, it is unreadable, or its
    process is gone (a node that was killed leaves its record behind)."""
    record = _read_json(data_dir / RUNTIME_FILE)
    if record is None:
        return None
    try:
        runtime = NodeRuntime.from_dict(record)
    except (KeyError, TypeError, ValueError):
        return None
    return runtime if pid_alive(runtime.pid) else None


def find_runtime(spec: Path, env: Mapping[str, str] | None = None) -> NodeRuntime | None:
    """The live record of the node that runs ``spec``, through the pointer; None if there is
    none. Needs nothing from the spec file itself, which may not even parse."""
    pointer = _read_json(pointer_path(spec, env))
    if pointer is None or not isinstance(pointer.get("dataDir"), str):
        return None
    runtime = read_runtime(Path(pointer["dataDir"]))
    if runtime is None or _resolved(runtime.spec) != _resolved(spec):
        return None  # stale: that dataDir now holds a node started from another spec
    return runtime


class RuntimeFile:
    """Owned by `gate up`: publishes the record (again whenever the control server binds) and
    removes it, with the pointer, on the way out. Writing is best effort: a node whose state
    directory is read-only still runs, and the CLI falls back to reading the spec."""

    def __init__(self, *, spec: Path, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self._spec = spec.absolute()
        self._data_dir = data_dir
        self._env = env
        self._pid = os.getpid()
        self._published: NodeRuntime | None = None
        self._pointer_written = False

    def publish(self, *, address: str, tls_cert: Path | None) -> None:
        """Record the control server bound at ``address`` (``host:port``, as its Ready
        condition reports it)."""
        host, _, port = address.rpartition(":")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # IPv6
        runtime = NodeRuntime(
            pid=self._pid,
            control=f"{'https' if tls_cert is not None else 'http'}://{host}:{port}",
            token_file=self._data_dir / "control.token",
            spec=self._spec,
            data_dir=self._data_dir,
            tls_cert=tls_cert,
        )
        if runtime == self._published:
            return  # the same server, seen again at a new generation
        try:
            _write_private(self._data_dir / RUNTIME_FILE, runtime.to_dict())
        except OSError as e:
            log.warning("cannot write %s: %s", self._data_dir / RUNTIME_FILE, e.strerror)
            return
        self._published = runtime
        if self._pointer_written:
            return
        pointer = pointer_path(self._spec, self._env)
        try:
            pointer.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            pointer.parent.chmod(0o700)  # our own directory; tighten what an older run left
            _sweep(pointer.parent)
            _write_private(pointer, {"spec": str(self._spec), "dataDir": str(self._data_dir)})
        except OSError as e:
            log.warning(
                "cannot write %s (the CLI finds this node through the spec instead): %s",
                pointer,
                e.strerror,
            )
            return
        self._pointer_written = True

    def remove(self) -> None:
        """Remove the record and the pointer, if they are still this process's."""
        record = _read_json(self._data_dir / RUNTIME_FILE)
        if record is not None and record.get("pid") == self._pid:
            with contextlib.suppress(OSError):
                (self._data_dir / RUNTIME_FILE).unlink()
        if self._pointer_written:
            pointer = pointer_path(self._spec, self._env)
            owned = _read_json(pointer)
            if owned is not None and owned.get("dataDir") == str(self._data_dir):
                with contextlib.suppress(OSError):
                    pointer.unlink()

    def __enter__(self) -> RuntimeFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically, and mode 0600 from the start: the record names the token file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sweep(directory: Path) -> None:
    """Drop pointers whose node is gone (killed, so it could not remove its own), so that the
    directory does not fill up with one file per spec ever started."""
    for pointer in directory.glob("node-*.json"):
        data = _read_json(pointer)
        data_dir = data.get("dataDir") if data is not None else None
        if not isinstance(data_dir, str) or read_runtime(Path(data_dir)) is None:
            with contextlib.suppress(OSError):
                pointer.unlink()
