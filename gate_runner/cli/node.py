"""`gate up`, `gate down` and `gate status`: run the node in the foreground or the
background, stop it, and show what it runs."""

from __future__ import annotations

__all__ = ("register", "run_foreground")

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gate_runner.cli.client import ControlClient, find_spec_file, locate_node
from gate_runner.cli.command import EXIT_FAILURE, EXIT_OK, Subparsers, add, node_client
from gate_runner.cli.output import emit, render_status
from gate_runner.errors import GateError, SpecError
from gate_runner.state.runtime import pid_alive

if TYPE_CHECKING:
    from gate_runner.reconcile.kind import Kind

# The Ready reason the supervisor gives a component that retrying cannot help
# (reconcile/supervisor.py); `gate up -d` fails on it rather than wait.
PERMANENT_FAILURE = "PermanentError"
# The Ready reason of a component the spec asks for that this version cannot run
# (components/certs.py): reported, not waited for.
NOT_IMPLEMENTED = "NotImplemented"
# How long `gate up -d` waits for every component to be Ready.
READY_TIMEOUT = 30.0


def _running_pid(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def cmd_up(args: argparse.Namespace) -> int:
    spec_path = find_spec_file(args.file).absolute()
    if args.detach:
        return _up_detached(args, spec_path)
    from gate_runner.reconcile.node import NODE_KIND

    return run_foreground(spec_path, NODE_KIND, args)


def run_foreground(spec_path: Path, kind: Kind[Any], args: argparse.Namespace) -> int:
    """Run a node or relay in this process until it is stopped; one per dataDir."""
    import anyio

    from gate_runner.logs import configure_logging
    from gate_runner.reconcile import runner

    configure_logging(fmt=args.log_format, level=args.log_level)
    boot = runner.prepare(spec_path, kind)
    pidfile = boot.spec.data_dir / "gate.pid"
    other = _running_pid(pidfile)
    noun = kind.spec.name.lower()
    if other is not None and other != os.getpid():
        raise GateError(
            f"a {noun} is already running with this dataDir (pid {other})",
            hint=f"stop it with `gate down`, or give this {noun} its own spec.dataDir",
        )
    pidfile.write_text(f"{os.getpid()}\n")
    try:
        anyio.run(runner.run, boot, kind, backend="trio")
    finally:
        if _running_pid(pidfile) == os.getpid():
            pidfile.unlink(missing_ok=True)
    return EXIT_OK


def _up_detached(args: argparse.Namespace, spec_path: Path) -> int:
    from gate_runner.reconcile.node import NODE_KIND
    from gate_runner.reconcile.runner import prepare

    boot = prepare(spec_path, NODE_KIND)  # fail here, in the foreground, on a bad spec or key
    boot.state.close()
    log_path = boot.spec.data_dir / "gate.log"
    command = [
        sys.executable,
        "-m",
        "gate_runner",
        "up",
        "-f",
        str(spec_path),
        "--log-format",
        "json",
        "--log-level",
        args.log_level,
    ]
    with log_path.open("ab") as log_file:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    deadline = time.monotonic() + READY_TIMEOUT
    status: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(
                f"gate up: the node exited with code {child.returncode}; see {log_path}",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        status = _poll_status(spec_path)
        if status is not None:
            failed, waiting, unsupported = _readiness(status)
            if failed:
                for line in failed:
                    print(f"gate up: {line}", file=sys.stderr)
                _stop_child(child)
                print(
                    "gate up: the node failed to start and was stopped; fix the above and run "
                    f"`gate up -d` again (log: {log_path})",
                    file=sys.stderr,
                )
                return EXIT_FAILURE
            if not waiting:
                for line in unsupported:
                    print(f"gate up: {line}", file=sys.stderr)
                print(
                    f"node {status['name']} running in the background (pid {child.pid}), "
                    f"generation {status['spec']['generation']}, "
                    f"{len(status['components'])} components ready; log: {log_path}"
                )
                return EXIT_OK
        time.sleep(0.2)
    if status is None:
        print(
            f"gate up: the node did not answer within {READY_TIMEOUT:.0f}s; see {log_path}",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    _, waiting, _ = _readiness(status)
    print(
        f"gate up: not ready after {READY_TIMEOUT:.0f}s: {'; '.join(waiting)}",
        file=sys.stderr,
    )
    print(
        f"gate up: the node keeps running in the background (pid {child.pid}): watch it with "
        f"`gate status -w`, stop it with `gate down`; log: {log_path}",
        file=sys.stderr,
    )
    return EXIT_FAILURE


def _poll_status(spec_path: Path) -> dict[str, Any] | None:
    """node.status of the node just started, or None while it does not answer. Located again
    each time: the runtime record that names the bound address appears once it listens."""
    try:
        location = locate_node(control=None, spec_file=str(spec_path))
        with ControlClient(location, timeout=2.0) as client:
            status: dict[str, Any] = client.call("node.status")
    except GateError:
        return None
    return status


def _readiness(status: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """Components that failed for good, those not Ready yet, and those this version cannot
    run. Only a PermanentError is a failure: Starting, a component's own reason while it
    loads (p2p: Loading, while it imports py-libp2p) and a transient error that is being
    retried may all still end Ready."""
    failed: list[str] = []
    waiting: list[str] = []
    unsupported: list[str] = []
    spec = status["spec"]
    if not status["components"] or spec["observedGeneration"] < spec["generation"]:
        waiting.append(f"generation {spec['generation']} is not applied yet")
    for component in status["components"]:
        ready = next((c for c in component["conditions"] if c["type"] == "Ready"), None)
        if ready is not None and ready["status"]:
            continue
        name = f"{component['kind']}/{component['key']}"
        if ready is None:
            waiting.append(f"{name} (no Ready condition yet)")
        elif ready["reason"] == PERMANENT_FAILURE:
            failed.append(f"{name} failed: {ready['message']}")
        elif ready["reason"] == NOT_IMPLEMENTED:
            unsupported.append(f"{name} does not run: {ready['message']}")
        else:
            detail = f": {ready['message']}" if ready["message"] else ""
            waiting.append(f"{name} ({ready['reason']}{detail})")
    return failed, waiting, unsupported


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM is the node's graceful stop; a node that hangs in it is killed."""
    child.terminate()
    try:
        child.wait(20)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def cmd_down(args: argparse.Namespace) -> int:
    try:
        location = locate_node(control=args.control, spec_file=args.file)
    except SpecError:
        raise
    except GateError as e:
        raise GateError("no running node found", hint=str(e)) from e
    pid = location.pid
    if pid is None and location.data_dir is not None:
        pid = _running_pid(location.data_dir / "gate.pid")
    try:
        with ControlClient(location) as client:
            client.call("node.shutdown")
    except GateError as e:
        if pid is None:
            raise GateError("no running node found", hint=str(e)) from e
        os.kill(pid, signal.SIGTERM)
    if pid is not None:
        deadline = time.monotonic() + 20
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(pid):
            print(f"node (pid {pid}) is still stopping", file=sys.stderr)
            return EXIT_FAILURE
    print("node stopped")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with node_client(args) as client:
        if args.watch:
            from gate_runner.cli.watch import watch_status

            return watch_status(client, args.output)
        emit(client.call("node.status"), args.output, render_status)
    return EXIT_OK


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate up`, `gate down` and `gate status`."""
    up = add(
        sub,
        "up",
        cmd_up,
        "run the node (in the foreground unless --detach)",
        ["gate up -f gate.yaml", "gate up -d --log-level debug   # log in dataDir/gate.log"],
        (common,),
    )
    up.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up.add_argument("--log-format", choices=["auto", "text", "json"], default="auto")
    up.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    add(sub, "down", cmd_down, "stop the running node", ["gate down -f gate.yaml"], (common,))
    status = add(
        sub,
        "status",
        cmd_status,
        "show the node's spec generation, components and peers",
        [
            "gate status",
            "gate status -w                  # redraw on every change",
            "gate status -o json | jq .spec",
        ],
        (common, out),
    )
    status.add_argument(
        "-w", "--watch", action="store_true", help="keep watching: show it again on each change"
    )
