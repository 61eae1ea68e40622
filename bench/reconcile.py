"""Reconcile benchmarks for `gate up`: save-to-convergence, start-up to ready and idle RSS,
each printed as a ratio against a floor measured in the same run on the same machine.

Run from the repo root: `python bench/reconcile.py [--edits 50]`.
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.rig import GateNode, node_yaml  # noqa: E402

# The watcher's settings in gate_runner/reconcile/watcher.py: a burst ends after STEP_MS of
# quiet, or DEBOUNCE_MS after its first event. The floor below must use the same ones.
STEP_MS = 50
DEBOUNCE_MS = 400
SAVE_KINDS = ("in-place", "rename")
STARTUP_RUNS = 5
IDLE_SECONDS = 2.0
EDIT_TIMEOUT = 5.0

# The file-event floor: a bare awatch on trio with Gate's settings and filter, printing the
# monotonic time (CLOCK_MONOTONIC, shared across processes) of each yielded batch.
WATCH_FLOOR = f"""\
import sys, time
from pathlib import Path
import anyio
from watchfiles import awatch

async def main(directory, name):
    print("ready", flush=True)
    async for _ in awatch(
        directory,
        watch_filter=lambda change, path: Path(path).name == name,
        debounce={DEBOUNCE_MS},
        step={STEP_MS},
        recursive=False,
        rust_timeout=1000,
    ):
        print(time.monotonic(), flush=True)

anyio.run(main, sys.argv[1], sys.argv[2], backend="trio")
"""

# What `gate up` imports before it serves (cli/node.py cmd_up, plus anyio's trio backend).
IMPORT_ONLY = (
    "import anyio._backends._trio, gate_runner.cli.main, gate_runner.logs, "
    "gate_runner.reconcile.node, gate_runner.reconcile.runner"
)

# The stack's floor for memory: the libraries Gate is built on, loaded and idle on trio.
STACK_FLOOR = """\
import httpx, hypercorn.trio, starlette.applications, trio
print("ready", flush=True)
trio.run(trio.sleep, 3600)
"""


# -- numbers and tables -------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; with few samples p99 is close to max."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base > 0 else "n/a"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    print(f"\n{title}\n")
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))


@dataclass(frozen=True)
class Sample:
    """Latencies of one path, in seconds, plus how many attempts never finished."""

    label: str
    seconds: tuple[float, ...]
    missed: int = 0

    @property
    def p50(self) -> float:
        return percentile(self.seconds, 50)

    @property
    def p99(self) -> float:
        return percentile(self.seconds, 99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.seconds)


# -- processes ------------------------------------------------------------------------------


class LineReader:
    """Lines of a child's stdout, read by a thread so the caller can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._stream = proc.stdout
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self._stream:
            self._lines.put(line.strip())

    def next(self, timeout: float) -> str | None:
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> None:
        while self.next(0) is not None:
            pass


def spawn_python(stack: ExitStack, code: str, *args: str) -> subprocess.Popen[str]:
    """A child interpreter that is killed (by its pid) when ``stack`` closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    stack.callback(stop_process, proc)
    return proc


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def stop_node(node: GateNode) -> None:
    try:
        node.stop()
    except AssertionError as e:
        print(f"warning: {e}".splitlines()[0], file=sys.stderr)


def vm_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def time_to_ready(code: str) -> float:
    """Seconds from spawning ``python -c code`` to its first line of output. The child is
    killed then, so like `gate up` to ready this leaves out interpreter teardown (~40 ms
    with Gate's imports loaded)."""
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", f"{code}\nprint('ready', flush=True)"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"python -c {code!r} failed")
        return time.monotonic() - began
    finally:
        stop_process(proc)


# -- the node's control plane ---------------------------------------------------------------


class Control:
    """JSON-RPC over one kept-alive connection, so that a status poll costs one round trip."""

    def __init__(self, node: GateNode) -> None:
        self._node = node
        self._client = httpx.Client(
            base_url=f"http://127.0.0.1:{node.control_port}",
            headers={"Authorization": f"Bearer {node.token}"},
            timeout=30,
        )
        self._id = 0
        self.transport_errors = 0

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._id += 1
        response = self._client.post(
            "/rpc",
            json={"jsonrpc": "2.0", "method": method, "params": params or {}, "id": self._id},
        )
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def generations(self) -> tuple[int, int] | None:
        """(generation, observedGeneration), or None while the control server is unreachable
        (counted: a reload that restarts it shows here)."""
        try:
            spec = self.call("node.status")["spec"]
        except httpx.TransportError:
            self.transport_errors += 1
            ensure_running(self._node)
            return None
        return int(spec["generation"]), int(spec["observedGeneration"])

    def close(self) -> None:
        self._client.close()


def ensure_running(node: GateNode) -> None:
    assert node.proc is not None
    if node.proc.poll() is not None:
        raise RuntimeError(f"gate exited with {node.proc.returncode}:\n{node.log()[-3000:]}")


def wait_ready(node: GateNode, *, began: float, timeout: float = 15.0) -> float:
    """Seconds from ``began`` to the first node.status answer, polled every 5 ms."""
    deadline = began + timeout
    with httpx.Client(timeout=1) as client:
        while time.monotonic() < deadline:
            ensure_running(node)
            try:
                response = client.post(
                    f"http://127.0.0.1:{node.control_port}/rpc",
                    json={"jsonrpc": "2.0", "method": "node.status", "params": {}, "id": 1},
                    headers={"Authorization": f"Bearer {node.token}"},
                )
                if response.status_code == 200 and "result" in response.json():
                    return time.monotonic() - began
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.005)
    raise RuntimeError(f"gate not ready after {timeout}s:\n{node.log()[-3000:]}")


# -- 1. save to convergence -----------------------------------------------------------------


def save(path: Path, text: str, *, kind: str) -> None:
    """Save like an editor: in place (truncate and write) or by rename over the original."""
    if kind == "in-place":
        with path.open("w") as f:
            f.write(text)
    else:
        temp = path.with_name(f".{path.name}.bench-{os.getpid()}.tmp")
        temp.write_text(text)
        os.replace(temp, path)


def pause_between_saves(fraction: float) -> None:
    """Let trailing events of a save land, then wait ``fraction`` of a watcher step.

    watchfiles' loop wakes every STEP_MS and yields once a wake-up sees no new events, so a
    write waits one to two steps depending on where in the step it lands. A fixed gap would
    lock that phase and measure one point of the range; evenly spread fractions sample all
    of it, with far less spread between runs than random ones.
    """
    time.sleep(0.02 + fraction * STEP_MS / 1000)


def edit_plan(
    edits: int, *, names: Sequence[str] = ("bench-a", "bench-b")
) -> Iterator[tuple[str, str, float]]:
    """(save kind, metadata.name, pause fraction) per edit. Names alternate, so every edit
    changes the spec; kinds alternate, so drift on the machine hits both alike; each kind
    gets the pause fractions (i + 0.5) / n in a shuffled (but fixed) order."""
    kinds = [SAVE_KINDS[i % len(SAVE_KINDS)] for i in range(edits)]
    rng = random.Random(edits)
    fractions: dict[str, list[float]] = {}
    for kind in SAVE_KINDS:
        count = kinds.count(kind)
        fractions[kind] = [(j + 0.5) / count for j in range(count)]
        rng.shuffle(fractions[kind])
    for i, kind in enumerate(kinds):
        yield kind, names[i % len(names)], fractions[kind].pop()


def watch_floor(stack: ExitStack, tmp: Path, *, edits: int) -> dict[str, Sample]:
    """Write to event: the least any watcher with Gate's settings can take."""
    directory = tmp / "floor"
    directory.mkdir()
    path = directory / "gate.yaml"
    path.write_text("metadata:\n  name: start\n")
    proc = spawn_python(stack, WATCH_FLOOR, str(directory), path.name)
    lines = LineReader(proc)
    if lines.next(10) != "ready":
        raise RuntimeError("the watchfiles floor did not start")
    # awatch sets up its inotify watch on the first iteration, after "ready": warm up once.
    time.sleep(0.3)
    save(path, "metadata:\n  name: warm-up\n", kind="in-place")
    lines.next(EDIT_TIMEOUT)
    time.sleep(0.1)
    lines.drain()

    times: dict[str, list[float]] = {kind: [] for kind in SAVE_KINDS}
    missed = dict.fromkeys(SAVE_KINDS, 0)
    for kind, name, pause in edit_plan(edits):
        began = time.monotonic()
        save(path, f"metadata:\n  name: {name}\n", kind=kind)
        line = lines.next(EDIT_TIMEOUT)
        if line is None:
            missed[kind] += 1
        else:
            times[kind].append(float(line) - began)
        pause_between_saves(pause)
        lines.drain()
    stop_process(proc)
    return {
        kind: Sample(f"watchfiles floor, {kind}", tuple(times[kind]), missed[kind])
        for kind in SAVE_KINDS
    }


@dataclass(frozen=True)
class SaveRun:
    samples: dict[str, Sample]
    poll_period: float  # mean seconds between status polls: the resolution of the times
    transport_errors: int  # polls that found the control server unreachable


def gate_saves(
    node: GateNode,
    control: Control,
    *,
    edits: int,
    interval: float,
    names: Sequence[str] = ("bench-a", "bench-b"),
) -> SaveRun:
    """Time each save until node.status shows the new generation converged."""
    times: dict[str, list[float]] = {kind: [] for kind in SAVE_KINDS}
    missed = dict.fromkeys(SAVE_KINDS, 0)
    errors_before = control.transport_errors
    polls = 0
    polling = 0.0
    for kind, name, pause in edit_plan(edits, names=names):
        before = current_generation(control)
        text = node_yaml(
            node.tmp,
            name=name,
            control=node.control_port,
            api=node.api_port,
            p2p=node.p2p_port,
        )
        began = time.monotonic()
        save(node.spec_path, text, kind=kind)
        deadline = began + EDIT_TIMEOUT
        while True:
            seen = control.generations()
            now = time.monotonic()
            polls += 1
            if seen is not None and seen[0] > before and seen[1] == seen[0]:
                times[kind].append(now - began)
                break
            if now > deadline:
                missed[kind] += 1
                break
            time.sleep(interval)
        polling += time.monotonic() - began
        pause_between_saves(pause)
    samples = {
        kind: Sample(f"gate, {kind}", tuple(times[kind]), missed[kind]) for kind in SAVE_KINDS
    }
    return SaveRun(samples, polling / max(polls, 1), control.transport_errors - errors_before)


def current_generation(control: Control, *, timeout: float = EDIT_TIMEOUT) -> int:
    deadline = time.monotonic() + timeout
    while (seen := control.generations()) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"node.status unreachable for {timeout}s")
        time.sleep(0.01)
    return seen[0]


def rpc_round_trips(control: Control, *, calls: int) -> Sample:
    times = []
    for _ in range(calls):
        began = time.monotonic()
        control.call("node.status")
        times.append(time.monotonic() - began)
    return Sample("node.status round trip", tuple(times))


def rpc_applies(node: GateNode, control: Control, *, applies: int) -> Sample:
    times = []
    missed = 0
    for i in range(applies):
        text = node_yaml(
            node.tmp,
            name=("apply-a", "apply-b")[i % 2],
            control=node.control_port,
            api=node.api_port,
            p2p=node.p2p_port,
        )
        began = time.monotonic()
        try:
            result = control.call("spec.apply", {"yaml": text})
        except httpx.TransportError:
            ensure_running(node)
            result = {}
        elapsed = time.monotonic() - began
        if result.get("converged"):
            times.append(elapsed)
        else:
            missed += 1
        # spec.apply writes gate.yaml back, and the watcher re-reads it one to two steps
        # later (a no-op by digest). Wait that out so the next call does not queue behind it.
        time.sleep(2 * STEP_MS / 1000 + 0.05)
    return Sample("spec.apply (returns converged)", tuple(times), missed)


def bench_convergence(stack: ExitStack, tmp: Path, *, edits: int) -> None:
    interval = 0.002
    floor = watch_floor(stack, tmp, edits=edits)

    (tmp / "node").mkdir()
    node = GateNode(tmp / "node")
    stack.callback(stop_node, node)
    began = time.monotonic()
    node.start(wait=False)
    wait_ready(node, began=began)
    control = Control(node)
    stack.callback(control.close)
    # One unmeasured edit: the first reload pays for lazy imports and warm caches.
    gate_saves(node, control, edits=1, interval=interval, names=("warm-up",))
    gate = gate_saves(node, control, edits=edits, interval=interval)
    trivial = rpc_round_trips(control, calls=200)
    applies = rpc_applies(node, control, applies=edits)
    stop_node(node)

    rows = []
    for kind in SAVE_KINDS:
        rows.append(sample_row(floor[kind], floor[kind]))
    for kind in SAVE_KINDS:
        rows.append(sample_row(gate.samples[kind], floor[kind]))
    rows.append(sample_row(trivial, trivial))
    rows.append(sample_row(applies, trivial))
    print_table(
        f"## Save to convergence ({edits} edits, half in place, half by rename; status polled "
        f"every {interval * 1000:.0f} ms over keep-alive, measured poll period "
        f"{gate.poll_period * 1000:.1f} ms)",
        (
            "path",
            "n",
            "missed",
            "p50 ms",
            "mean ms",
            "p99 ms",
            "max ms",
            "vs",
            "p50 ratio",
            "p99 ratio",
            "p50 added ms",
        ),
        rows,
    )
    print(
        "\nvs: gate rows against the watchfiles floor for the same save kind; spec.apply "
        "against a node.status round trip.\nGate times end when a poll sees convergence, so "
        "they include up to one poll period. Polls that found the control server "
        f"unreachable during the saves: {gate.transport_errors}."
    )


def sample_row(sample: Sample, base: Sample) -> list[str]:
    vs = "itself" if sample is base else base.label
    if not sample.seconds or not base.seconds:
        blank = ["-"] * 4
        return [sample.label, str(len(sample.seconds)), str(sample.missed), *blank, vs, *blank]
    return [
        sample.label,
        str(len(sample.seconds)),
        str(sample.missed),
        ms(sample.p50),
        ms(sample.mean),
        ms(sample.p99),
        ms(max(sample.seconds)),
        vs,
        ratio(sample.p50, base.p50),
        ratio(sample.p99, base.p99),
        "-" if sample is base else ms(sample.p50 - base.p50),
    ]


# -- 2. start-up and 3. idle RSS --------------------------------------------------------------


def bench_startup_and_rss(stack: ExitStack, tmp: Path) -> None:
    # Every run shares one dataDir: the first boot creates the identity and state.db and is
    # shown apart; the measured runs are restarts, which is what users do most.
    home = tmp / "startup"
    home.mkdir()
    _, first_boot = start_once(stack, home, keep=False)
    bare: list[float] = []
    imports: list[float] = []
    restarts: list[float] = []
    node: GateNode | None = None
    for run in range(STARTUP_RUNS):
        # Interleaved, so that load from other work on the machine hits all three alike.
        bare.append(time_to_ready("pass"))
        imports.append(time_to_ready(IMPORT_ONLY))
        # Keep the last node running: its idle RSS is measured next.
        node, seconds = start_once(stack, home, keep=run == STARTUP_RUNS - 1)
        restarts.append(seconds)
    assert node is not None and node.proc is not None

    floor = spawn_python(stack, STACK_FLOOR)
    if LineReader(floor).next(10) != "ready":
        raise RuntimeError("the stack-floor process did not start")
    time.sleep(IDLE_SECONDS)
    node_rss = vm_rss_kib(node.proc.pid)
    floor_rss = vm_rss_kib(floor.pid)
    stop_node(node)
    stop_process(floor)

    startup = statistics.median(restarts)
    print_table(
        f"## Start-up to ready (spawn `gate up` to first node.status answer, "
        f"{STARTUP_RUNS} runs, polled every 5 ms)",
        ("what", "median ms", "max ms", "gate median / this"),
        [
            ["gate up, restart", ms(startup), ms(max(restarts)), "1.00x"],
            [
                "gate up, first boot (creates identity, state.db)",
                ms(first_boot),
                ms(first_boot),
                "-",
            ],
            [
                "python -c 'import <what gate up imports>'",
                ms(statistics.median(imports)),
                ms(max(imports)),
                ratio(startup, statistics.median(imports)),
            ],
            [
                "python -c pass",
                ms(statistics.median(bare)),
                ms(max(bare)),
                ratio(startup, statistics.median(bare)),
            ],
        ],
    )
    print_table(
        f"## Idle RSS (VmRSS after {IDLE_SECONDS:.0f} s idle)",
        ("process", "VmRSS MiB", "gate / this"),
        [
            ["gate up (idle, default components)", f"{node_rss / 1024:.1f}", "1.00x"],
            [
                "stack floor: trio+hypercorn+starlette+httpx imported, trio idle",
                f"{floor_rss / 1024:.1f}",
                ratio(node_rss, floor_rss),
            ],
        ],
    )


def start_once(stack: ExitStack, home: Path, *, keep: bool = True) -> tuple[GateNode, float]:
    """Start a node on fresh ports over ``home``'s dataDir; stop it unless ``keep``."""
    node = GateNode(home)
    stack.callback(stop_node, node)
    began = time.monotonic()
    node.start(wait=False)
    seconds = wait_ready(node, began=began)
    if not keep:
        stop_node(node)
    return node, seconds


# -------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=50, help="edits of gate.yaml (default 50)")
    args = parser.parse_args(argv)
    if args.edits < 2:
        parser.error("--edits must be at least 2 (half are saved in place, half by rename)")

    began = time.monotonic()
    print(f"# bench/reconcile.py: python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    # The stack stops every process started below, even on error, before tmp is removed.
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp, ExitStack() as stack:
        bench_convergence(stack, Path(tmp), edits=args.edits)
        bench_startup_and_rss(stack, Path(tmp))
    print(f"\n(total {time.monotonic() - began:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
