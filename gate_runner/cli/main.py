"""The `gate` command line: parse arguments, run one command, map errors to exit codes."""

from __future__ import annotations

__all__ = ("main",)

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gate_runner import __version__
from gate_runner.cli.client import ControlClient, RpcError, find_spec_file, locate_node
from gate_runner.cli.output import emit, render_peers, render_status, table
from gate_runner.errors import GateError, SpecError
from gate_runner.state.runtime import pid_alive

EXIT_OK, EXIT_FAILURE, EXIT_INVALID = 0, 1, 2
# components.control.contract.SPEC_INVALID, not imported: the CLI stays light to start.
SPEC_INVALID = -32000
# The Ready reason the supervisor gives a component that retrying cannot help
# (reconcile/supervisor.py); `gate up -d` fails on it rather than wait.
PERMANENT_FAILURE = "PermanentError"
# How long `gate up -d` waits for every component to be Ready.
READY_TIMEOUT = 30.0
# What a command exits with when its reader closed the pipe: 128 + SIGPIPE, as cat, git or
# kubectl report it when the signal ends them.
EXIT_PIPE = 141


class UsageError(GateError):
    """Raised for invalid command-line input (exit 2)."""


def _client(args: argparse.Namespace, *, strict: bool = False) -> ControlClient:
    """A client for the node of -f (or --control). ``strict`` validates the spec file first,
    for the commands that send it; the others reach the node even when the file is broken."""
    return ControlClient(locate_node(control=args.control, spec_file=args.file, strict=strict))


def _read_file(path: str) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(
            f"{path}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})",
            hint="save the file as UTF-8",
        ) from e


# -- node lifecycle ---------------------------------------------------------------------


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
    import anyio

    from gate_runner.logs import configure_logging
    from gate_runner.reconcile.node import prepare, run_node

    configure_logging(fmt=args.log_format, level=args.log_level)
    boot = prepare(spec_path)
    pidfile = boot.spec.data_dir / "gate.pid"
    other = _running_pid(pidfile)
    if other is not None and other != os.getpid():
        raise GateError(
            f"a node is already running with this dataDir (pid {other})",
            hint="stop it with `gate down`, or give this node its own spec.dataDir",
        )
    pidfile.write_text(f"{os.getpid()}\n")
    try:
        anyio.run(run_node, boot, backend="trio")
    finally:
        if _running_pid(pidfile) == os.getpid():
            pidfile.unlink(missing_ok=True)
    return EXIT_OK


def _up_detached(args: argparse.Namespace, spec_path: Path) -> int:
    from gate_runner.reconcile.node import prepare

    boot = prepare(spec_path)  # fail here, in the foreground, on a bad spec or key
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
            failed, waiting = _readiness(status)
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
    _, waiting = _readiness(status)
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


def _readiness(status: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Components that failed for good, and those not Ready yet. Only a PermanentError is a
    failure: Starting, a component's own reason while it loads (p2p: Loading, while it imports
    py-libp2p) and a transient error that is being retried may all still end Ready."""
    failed: list[str] = []
    waiting: list[str] = []
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
        else:
            detail = f": {ready['message']}" if ready["message"] else ""
            waiting.append(f"{name} ({ready['reason']}{detail})")
    return failed, waiting


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
    with _client(args) as client:
        if args.watch:
            from gate_runner.cli.watch import watch_status

            return watch_status(client, args.output)
        emit(client.call("node.status"), args.output, render_status)
    return EXIT_OK


# -- the spec -----------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from gate_runner.spec import load_spec_file

    if args.file is None:
        raise UsageError("validate needs -f FILE")
    try:
        loaded = load_spec_file(args.file)
    except OSError as e:
        raise UsageError(f"cannot read {args.file}: {e.strerror}") from e
    extra = f" (migrated from {loaded.migrated_from})" if loaded.migrated_from else ""
    print(f"{args.file}: valid {loaded.kind} spec{extra}")
    return EXIT_OK


def _apply_params(args: argparse.Namespace) -> dict[str, Any]:
    if args.file is None:
        raise UsageError(f"{args.command} needs -f FILE")
    return {"yaml": _read_file(args.file), "source": str(Path(args.file).absolute())}


def cmd_diff(args: argparse.Namespace) -> int:
    params = _apply_params(args)
    with _client(args, strict=True) as client:
        result = client.call("spec.diff", params)
    print(result["diff"] or f"no changes against generation {result['generation']}", end="")
    if result["diff"] == "":
        print()
    return EXIT_OK


def _print_apply(result: dict[str, Any], *, verb: str, fmt: str = "table") -> None:
    if fmt != "table":
        emit(result, fmt, str)
        return
    if result.get("diff"):
        print(result["diff"], end="" if result["diff"].endswith("\n") else "\n")
    if result.get("dryRun"):
        print(f"dry run: nothing applied (generation stays {result['generation']})")
    elif not result.get("changed"):
        print(f"no changes: generation stays {result['generation']}")
    else:
        state = "converged" if result.get("converged") else "still converging"
        print(
            f"{verb} generation {result['generation']}, {state} "
            f"(observed {result.get('observedGeneration')})"
        )


def cmd_apply(args: argparse.Namespace) -> int:
    params = _apply_params(args)
    params["dryRun"] = args.dry_run
    if args.expected_generation is not None:
        params["expectedGeneration"] = args.expected_generation
    with _client(args, strict=True) as client:
        result = client.call("spec.apply", params)
    _print_apply(result, verb="applied", fmt=args.output)
    return EXIT_OK if result.get("converged", True) else EXIT_FAILURE


def cmd_rollback(args: argparse.Namespace) -> int:
    params = {} if args.generation is None else {"generation": args.generation}
    with _client(args) as client:
        result = client.call("spec.rollback", params)
    _print_apply(
        result, verb=f"rolled back to generation {result['rolledBackTo']} as", fmt=args.output
    )
    return EXIT_OK


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        result = client.call("spec.get")
    if args.output == "table":
        sys.stdout.write(result["yaml"])
    else:
        emit(result["document"], args.output, str)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    with _client(args) as client:
        entries = client.call("spec.history", {"limit": args.limit})
    emit(
        entries,
        args.output,
        lambda rows: table(
            ["GENERATION", "APPLIED", "ORIGIN", "SOURCE"],
            [[e["generation"], e["appliedAt"], e["origin"], e["source"]] for e in rows],
        ),
    )
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    from gate_runner.cli.migrate import migrate_file_text
    from gate_runner.spec.write import atomic_write

    if args.file is None:
        raise UsageError("migrate needs -f FILE")
    text = _read_file(args.file)
    new_text, old_version = migrate_file_text(text, source=args.file)
    if old_version is None:
        print(f"{args.file}: already current; nothing to do")
        return EXIT_OK
    if args.stdout:
        sys.stdout.write(new_text)
        return EXIT_OK
    path = Path(args.file)
    atomic_write(path.with_name(path.name + ".bak"), text)
    atomic_write(path, new_text)
    print(f"{args.file}: migrated from {old_version}; the old file is at {path.name}.bak")
    return EXIT_OK


# -- providers and requests --------------------------------------------------------------


def _provider_rows(entries: list[dict[str, Any]]) -> str:
    return table(
        ["NAME", "KIND", "SOURCE", "HEALTH", "LATENCY", "MODELS", "BREAKER", "URL"],
        [
            [
                e["name"],
                e["kind"],
                e["source"],
                e["health"]["state"]
                + (f" ({e['health']['error']})" if e["health"]["error"] else ""),
                "" if e["health"]["latencyMs"] is None else f"{e['health']['latencyMs']:.1f}ms",
                ", ".join(e["models"]) or "-",
                e["breaker"],
                e["url"] or "",
            ]
            for e in entries
        ],
    )


def cmd_providers(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.providers_command == "test":
            params = {"name": args.name} if args.name else {}
            print("probing providers...", file=sys.stderr)
            entries = client.call("providers.test", params)
        else:
            entries = client.call("providers.list")
    if not entries and args.output == "table":
        print(
            "no providers: start Ollama (11434) or LM Studio (1234), or add one under "
            "spec.providers.static"
        )
        return EXIT_OK
    emit(entries, args.output, _provider_rows)
    if args.providers_command == "test":
        unhealthy = [e["name"] for e in entries if e["health"]["state"] == "Unhealthy"]
        return EXIT_FAILURE if unhealthy else EXIT_OK
    return EXIT_OK


def _peer_params(args: argparse.Namespace) -> dict[str, Any]:
    """peers.add's params. Knowing a peer and trusting it are separate choices (DESIGN.md
    section 2): what it may use is said only together with --trusted."""
    params: dict[str, Any] = {"name": args.name, "id": args.id}
    if args.addr:
        params["addrs"] = args.addr
    scoped = [
        flag
        for flag, value in (
            ("--models", args.models),
            ("--rpm", args.rpm),
            ("--concurrent", args.concurrent),
        )
        if value is not None
    ]
    if scoped and not args.trusted:
        raise UsageError(
            f"{', '.join(scoped)} say what {args.name} may use of this node, but it is not "
            "trusted to use it",
            hint="add --trusted, or leave them out to only know the peer (use what it offers)",
        )
    if not args.trusted:
        return params
    params["trusted"] = True
    if args.models is not None:
        params["models"] = [g.strip() for item in args.models for g in item.split(",") if g.strip()]
        if not params["models"]:
            raise UsageError("--models needs at least one glob, e.g. --models 'llama3*,qwen*'")
    limit = {}
    if args.rpm is not None:
        limit["requestsPerMinute"] = args.rpm
    if args.concurrent is not None:
        limit["concurrent"] = args.concurrent
    if limit:
        params["rateLimit"] = limit
    return params


def cmd_peers(args: argparse.Namespace) -> int:
    command = args.peers_command
    params = _peer_params(args) if command == "add" else None  # usage errors before the node
    with _client(args) as client:
        if command == "ls":
            emit(client.call("peers.list"), args.output, render_peers)
            return EXIT_OK
        if command == "test":
            result = client.call("peers.test", {"name": args.name})
            emit(result, args.output, lambda p: render_peers([p]))
            return EXIT_OK
        if params is not None:
            result = client.call("peers.add", params)
        else:
            result = client.call("peers.rm", {"name": args.name})
    _print_apply(result, verb="applied", fmt=args.output)
    return EXIT_OK


def cmd_requests(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.model:
        params["model"] = args.model
    with _client(args) as client:
        records = client.call("requests.list", params)
    emit(
        records,
        args.output,
        lambda rows: table(
            ["TIME", "ID", "MODEL", "PROVIDER", "STATUS", "LATENCY", "TTFT", "TOKENS", "SOURCE"],
            [
                [
                    time.strftime("%H:%M:%S", time.localtime(r["startedAt"])),
                    r["id"],
                    r["model"] or "-",
                    r["provider"] or "-",
                    r["status"],
                    f"{r['latencyMs']:.1f}ms",
                    "-" if r["ttftMs"] is None else f"{r['ttftMs']:.1f}ms",
                    "-" if r["completionTokens"] is None else r["completionTokens"],
                    r["source"],
                ]
                for r in rows
            ],
        ),
    )
    return EXIT_OK


# -- identity -----------------------------------------------------------------------------


def _key_path(args: argparse.Namespace) -> Path:
    from gate_runner.spec import NodeSpec, load_spec_file

    loaded = load_spec_file(find_spec_file(args.file), expect_kind="Node")
    assert isinstance(loaded.spec, NodeSpec)
    return loaded.spec.key_path


def cmd_id(args: argparse.Namespace) -> int:
    from gate_runner.identity import Identity

    if args.id_command == "import":
        source = Path(args.pem)
        try:
            identity = Identity.from_pem(source.read_bytes())
        except OSError as e:
            raise UsageError(f"cannot read {source}: {e.strerror}") from e
        key_path = _key_path(args)
        key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity.save(key_path, overwrite=args.force)
        print(f"imported {identity.node_id.peer_id} into {key_path}")
        return EXIT_OK
    identity = Identity.load(_key_path(args))
    if args.id_command == "export":
        sys.stdout.write(identity.to_pem().decode())
        return EXIT_OK
    node_id = identity.node_id
    data = {"peerId": node_id.peer_id, "hex": node_id.hex, "label": node_id.label}
    emit(data, args.output, lambda d: "\n".join(f"{k:<7} {v}" for k, v in d.items()))
    return EXIT_OK


# -- parsing ------------------------------------------------------------------------------


def cmd_logs(args: argparse.Namespace) -> int:
    from gate_runner.cli.watch import follow_logs

    with _client(args) as client:
        return follow_logs(
            client, level=args.level, lines=args.lines, follow=args.follow, fmt=args.output
        )


def cmd_ui(args: argparse.Namespace) -> int:
    with _client(args) as client:
        link = client.call("node.loginLink")
    if args.output != "table":
        emit(link, args.output, str)
        return EXIT_OK
    print(f"Open this link to log in (it works once, until {link['expiresAt']}):")
    print(f"  {link['url']}")
    if not args.no_browser and _has_browser():
        import webbrowser

        webbrowser.open(link["url"])
    return EXIT_OK


def _has_browser() -> bool:
    """A graphical browser only: on a server, webbrowser would start lynx in this terminal."""
    if sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return not isinstance(browser, webbrowser.GenericBrowser) or browser.name not in (
        "www-browser",
        "links",
        "elinks",
        "lynx",
        "w3m",
    )


def cmd_completion(args: argparse.Namespace) -> int:
    from gate_runner.cli.completion import script

    sys.stdout.write(script(build_parser(), args.shell))
    return EXIT_OK


# -- parsing ------------------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-f", "--file", help="spec file (default ./gate.yaml, then ~/.config/gate/gate.yaml)"
    )
    common.add_argument(
        "--control", help="control address of the node, host:port or a URL (or GATE_CONTROL)"
    )
    # `gate logs -f` follows, as kubectl's and docker's do: there the spec is --file only.
    common_long = argparse.ArgumentParser(add_help=False)
    common_long.add_argument("--file", help="spec file (as -f elsewhere)")
    common_long.add_argument("--control", help="control address of the node (or GATE_CONTROL)")
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    parser = argparse.ArgumentParser(
        prog="gate",
        description="Gate: share your inference engines with yourself and your friends.",
        epilog=_examples(
            "gate init                       # write gate.yaml, step by step",
            "gate up -f gate.yaml            # run the node",
            "gate status -w                  # watch it converge",
            "gate apply -f gate.yaml --dry-run",
        )
        + "\n\nexit codes: 0 ok, 1 failure, 2 invalid input",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gate {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        func: Callable[[argparse.Namespace], int],
        help_: str,
        examples: Sequence[str],
        parents: Sequence[argparse.ArgumentParser] = (common,),
        into: Any = sub,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(
            name,
            help=help_,
            description=help_,
            parents=list(parents),
            epilog=_examples(*examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func, output="table")
        return p

    def group(name: str, help_: str, dest: str) -> Any:
        p = sub.add_parser(name, help=help_, description=help_)
        return p.add_subparsers(dest=dest, required=True, metavar="SUBCOMMAND")

    from gate_runner.cli import init as init_cmd

    init_cmd.register(sub)
    up = add(
        "up",
        cmd_up,
        "run the node (in the foreground unless --detach)",
        ["gate up -f gate.yaml", "gate up -d --log-level debug   # log in dataDir/gate.log"],
    )
    up.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up.add_argument("--log-format", choices=["auto", "text", "json"], default="auto")
    up.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default="info")
    add("down", cmd_down, "stop the running node", ["gate down -f gate.yaml"])
    status = add(
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
    add(
        "validate",
        cmd_validate,
        "check a spec file without a running node",
        ["gate validate -f gate.yaml"],
    )
    apply = add(
        "apply",
        cmd_apply,
        "apply a spec file to the running node, print the diff",
        ["gate apply -f gate.yaml", "gate apply -f gate.yaml --dry-run -o json"],
        (common, out),
    )
    apply.add_argument("--dry-run", action="store_true", help="validate and diff only")
    apply.add_argument(
        "--expected-generation",
        type=int,
        metavar="N",
        help="apply only if the node is at generation N",
    )
    add(
        "diff",
        cmd_diff,
        "show what applying a spec file would change",
        ["gate diff -f new.yaml"],
    )
    rollback = add(
        "rollback",
        cmd_rollback,
        "re-apply an earlier generation (default: previous)",
        ["gate rollback", "gate rollback 3"],
        (common, out),
    )
    rollback.add_argument("generation", type=int, nargs="?")
    add(
        "get",
        cmd_get,
        "print the spec the node is running (YAML by default)",
        ["gate get > running.yaml", "gate get -o json"],
        (common, out),
    )
    history = add(
        "history",
        cmd_history,
        "list accepted spec generations",
        ["gate history --limit 5"],
        (common, out),
    )
    history.add_argument("--limit", type=int, default=20)
    migrate = add(
        "migrate",
        cmd_migrate,
        "upgrade a spec file to the current apiVersion, keeping its comments",
        ["gate migrate -f old.yaml", "gate migrate -f old.yaml --stdout"],
    )
    migrate.add_argument("--stdout", action="store_true", help="print instead of rewriting")

    providers = group("providers", "list or probe the node's providers", "providers_command")
    add(
        "ls",
        cmd_providers,
        "list providers, their health and models",
        ["gate providers ls", "gate providers ls -o yaml"],
        (common, out),
        providers,
    )
    p = add(
        "test",
        cmd_providers,
        "probe providers now (exit 1 if one is unhealthy)",
        ["gate providers test", "gate providers test ollama"],
        (common, out),
        providers,
    )
    p.add_argument("name", nargs="?", help="one provider (default: all)")

    peers = group("peers", "list, add, remove or test peers", "peers_command")
    add(
        "ls",
        cmd_peers,
        "peers and their links both ways: what they offer me, what they may use of mine",
        ["gate peers ls", "gate peers ls -o json | jq '.[] | {name, trusted, sharedModels}'"],
        (common, out),
        peers,
    )
    p = add(
        "add",
        cmd_peers,
        "add a peer to the spec (through spec.apply; keeps the file's comments). Without "
        "--trusted you may use what it offers; with it, it may also use this node",
        [
            "gate peers add bob 12D3KooW... --addr /ip4/203.0.113.7/tcp/41145",
            "gate peers add bob 12D3KooW... --trusted                 # bob may use all my models",
            "gate peers add bob 12D3KooW... --trusted --models 'llama3*,qwen*' --rpm 60 "
            "--concurrent 4",
        ],
        (common, out),
        peers,
    )
    p.add_argument("name")
    p.add_argument("id", help="peer id (12D3KooW...), 64 hex chars or 52-char label")
    p.add_argument("--addr", action="append", help="a multiaddr to dial (repeatable)")
    p.add_argument(
        "--trusted",
        action="store_true",
        help="let the peer use this node too (adds a spec.trust.allow rule)",
    )
    p.add_argument(
        "--models",
        action="append",
        metavar="GLOB,...",
        help="with --trusted: only these models (globs, comma-separated; default all)",
    )
    p.add_argument(
        "--rpm", type=_positive, metavar="N", help="with --trusted: at most N requests a minute"
    )
    p.add_argument(
        "--concurrent",
        type=_positive,
        metavar="N",
        help="with --trusted: at most N requests at once",
    )
    p = add(
        "rm",
        cmd_peers,
        "remove a peer from the spec (through spec.apply)",
        ["gate peers rm bob"],
        (common, out),
        peers,
    )
    p.add_argument("name")
    p = add(
        "test",
        cmd_peers,
        "round trip to a peer: RTT, link kind, models",
        ["gate peers test bob"],
        (common, out),
        peers,
    )
    p.add_argument("name")

    requests = group("requests", "the request log", "requests_command")
    p = add(
        "ls",
        cmd_requests,
        "list recent requests",
        ["gate requests ls --limit 50", "gate requests ls --model llama3 -o json"],
        (common, out),
        requests,
    )
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--model", help="only requests for this model")

    logs = add(
        "logs",
        cmd_logs,
        "print the node's recent log, and follow it with -f",
        ["gate logs -n 50", "gate logs -f --level warning", "gate logs -f -o json | jq .msg"],
        (common_long, out),
    )
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    logs.add_argument(
        "-n", "--lines", type=int, default=20, metavar="N", help="recent records first (20)"
    )
    logs.add_argument(
        "--level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="least level shown (info)",
    )

    ui = add(
        "ui",
        cmd_ui,
        "print a one-time login link for the web UI, and open it in a browser if there is one",
        ["gate ui", "gate ui --no-browser            # on a server: open the link elsewhere"],
        (common, out),
    )
    ui.add_argument("--no-browser", action="store_true", help="only print the link")

    id_cmd = group("id", "show, export or import the node identity", "id_command")
    for name, help_, example in (
        ("show", "print the node id in its three forms", "gate id show -o json"),
        ("export", "print the private key (PKCS#8 PEM) to stdout", "gate id export > key.pem"),
    ):
        add(name, cmd_id, help_, [example], (common, out), id_cmd)
    imp = add(
        "import",
        cmd_id,
        "install a PKCS#8 PEM key as the node's key",
        ["gate id import key.pem", "gate id import key.pem --force"],
        (common,),
        id_cmd,
    )
    imp.add_argument("pem", help="PEM file to import")
    imp.add_argument("--force", action="store_true", help="replace an existing key")

    completion = add(
        "completion",
        cmd_completion,
        "print a shell completion script",
        [
            "gate completion bash > ~/.local/share/bash-completion/completions/gate",
            "gate completion zsh > ~/.zfunc/_gate    # with fpath+=~/.zfunc",
            "gate completion fish > ~/.config/fish/completions/gate.fish",
        ],
        (),
    )
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a write still buffered fails here, not at the exit
    except BrokenPipeError:
        # The reader went away (`gate status | head -1`): nothing is wrong, and there is no
        # one to tell. Exit as a tool killed by SIGPIPE does, so that `set -o pipefail` sees
        # the cut-short output as it would from cat; stdout goes to /dev/null so that the
        # interpreter's own final flush does not fail again and print a traceback.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EXIT_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except SpecError as e:
        print(str(e), file=sys.stderr)
        return EXIT_INVALID
    except RpcError as e:
        if e.code == SPEC_INVALID and isinstance(e.data, dict):
            for issue in e.data.get("issues", []):
                print(_format_issue(issue), file=sys.stderr)
            return EXIT_INVALID
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except UsageError as e:
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_INVALID
    except GateError as e:
        print(f"gate: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _format_issue(issue: dict[str, Any]) -> str:
    from gate_runner.errors import SpecIssue

    return str(SpecIssue(**issue))


if __name__ == "__main__":
    sys.exit(main())
