"""P2P hop: a client calling node B, which has no provider and forwards over libp2p to node A,
against the same client calling node A directly, both in front of the same fast upstreams
(DESIGN.md, section 13). Prints markdown tables of the added latency and the ratios.

    python bench/p2p.py                  # about a minute
    python bench/p2p.py --quick          # smoke run, about 15 s
    python bench/p2p.py --profile DIR    # then py-spy records both nodes under the hop's load
    python bench/p2p.py --keep DIR       # keep the nodes' specs and logs in DIR (new)

Needs nginx and wrk: scripts/bench-deps.sh installs what is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for entry in (str(ROOT), str(BENCH)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from _gateway_servers import (  # noqa: E402
    COMPLETION,
    EVENTS,
    JSON_MODEL,
    SSE_MODEL,
    _models,
    request_body,
)
from _loadgen import Connection, Reply, WrkResult, run_wrk  # noqa: E402
from gateway import (  # noqa: E402
    CHAT,
    DEPS,
    Cores,
    Endpoint,
    Processes,
    Unavailable,
    _answers,
    _deps_missing,
    _load,
    _ms,
    _nginx,
    _nginx_version,
    _num,
    _one_line,
    _tail,
    _timed,
    _wrk_version,
    start_upstreams,
)

from gate_runner.identity import Identity  # noqa: E402
from tests.rig import GateNode, free_port, gate_cmd  # noqa: E402

BIG_MODEL = "big"
BIG_BYTES = 8 << 20
A_NAME, B_NAME = "alice", "bob"
CONCURRENCY = 32

# The targets from the issue, printed next to the figures.
TARGET_ADDED_P50_MS = 3.0
TARGET_RATE_SHARE = 0.5

_BIG_SERVER = """\
  server {{
    listen 127.0.0.1:{port};
    location = /v1/models {{ default_type application/json; return 200 '{models}'; }}
    # nginx answers POST to a static file with 405: serve the file for it anyway.
    location = /v1/chat/completions {{
      default_type application/json; alias {body}; error_page 405 =200 $uri;
    }}
  }}
"""


@dataclass(frozen=True)
class Plan:
    """How much each measurement takes. wrk takes whole seconds only."""

    warm: int  # sequential requests per path before anything is timed
    latency: int  # sequential JSON requests per path
    streams: int  # sequential SSE streams per path
    bulk: int  # sequential 8 MiB responses per path
    rate_s: int  # seconds per wrk run at c=32
    rounds: int  # alternating direct/hop rounds of wrk
    block: int = 50  # sequential requests per turn: the paths alternate, so noise hits both

    @classmethod
    def pick(cls, *, quick: bool) -> Plan:
        if quick:
            return cls(warm=30, latency=200, streams=60, bulk=4, rate_s=1, rounds=1)
        return cls(warm=200, latency=1500, streams=400, bulk=24, rate_s=5, rounds=2)


@dataclass(frozen=True)
class Layout:
    """Where each process runs. A and B stand for two machines: the client and B on one core,
    A and its upstreams on the other, so the hop's two ends never share a core."""

    client: int | None  # the Python client, wrk and node B
    provider: int | None  # node A, nginx and the SSE upstream
    taskset: bool

    @classmethod
    def detect(cls, *, pin: bool) -> Layout:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        taskset = bool(shutil.which("taskset"))
        if not pin or len(cores) < 2:
            return cls(None, None, taskset)
        return cls(cores[0], cores[1], taskset)

    def cores(self) -> Cores:
        """What gateway.Processes needs (each spawn names its core itself)."""
        return Cores(self.client, self.provider, self.taskset)

    def describe(self) -> str:
        if self.provider is None:
            return "not pinned (--no-pin, or fewer than 2 usable cores)"
        return (
            f"node A, nginx and the SSE upstream on core {self.provider} (the provider's "
            f"machine); node B, the Python client and wrk on core {self.client} (the "
            "client's machine). The direct row has the client on B's core too, so the rows "
            "differ only by B and the libp2p hop"
        )


@dataclass
class Samples:
    """Sequential requests on one kept-alive connection: seconds per request, and to the
    first SSE event for streams."""

    total: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    events: set[int] = field(default_factory=set)
    body_bytes: set[int] = field(default_factory=set)
    nodes: set[str] = field(default_factory=set)  # X-Gate-Node: who answered


@dataclass
class Route:
    """One way to the upstreams: A's API directly, or B's API (and the hop behind it)."""

    key: str
    label: str
    port: int
    json: Samples = field(default_factory=Samples)
    sse: Samples = field(default_factory=Samples)
    big: Samples = field(default_factory=Samples)
    rates: list[WrkResult] = field(default_factory=list)
    wrk_runs: int = 0
    # After a wrk run ends (closing its connections with requests in flight): seconds until
    # the path answered again, and the first refusal, for each run after which it did not.
    outages: list[tuple[float, str]] = field(default_factory=list)


# -- percentiles and formatting --------------------------------------------------------------


def _pct(values: list[float], q: int) -> float:
    """The q-th percentile (inclusive method, as _loadgen's), in the values' unit."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _ms_of(values: list[float], q: int) -> float:
    return _pct(values, q) * 1000


def _best_rate(path: Route) -> WrkResult | None:
    return max(path.rates, key=lambda r: r.rate) if path.rates else None


def _x(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "missed")


# -- the servers -----------------------------------------------------------------------------


def start_big(procs: Processes, *, core: int | None) -> int:
    """nginx serving one valid 8 MiB chat completion for the model `big`: the bulk figure."""
    bare = json.loads(COMPLETION)
    bare["model"] = BIG_MODEL
    bare["choices"][0]["message"]["content"] = ""
    pad = BIG_BYTES - len(json.dumps(bare, separators=(",", ":")))
    bare["choices"][0]["message"]["content"] = "x" * pad
    body = json.dumps(bare, separators=(",", ":")).encode()
    assert len(body) == BIG_BYTES, len(body)
    path = procs.workdir / "big.json"
    path.write_bytes(body)
    models = _models(BIG_MODEL).decode()
    assert "'" not in models and "$" not in models and "\\" not in models
    port = free_port()
    server = _BIG_SERVER.format(port=port, models=models, body=path)
    _nginx(procs, "upstream-big", server, port=port, core=core)
    return port


def _node(workdir: Path, name: str, identity: Identity, extra: str) -> GateNode:
    home = workdir / name
    (home / "data").mkdir(parents=True, mode=0o700)
    identity.save(home / "data" / "identity.pem")
    return GateNode(home, name=name, extra=extra)


def _spawn(procs: Processes, node: GateNode, *, core: int | None) -> None:
    # Request logging off, as in bench/gateway.py: the bench measures the path, not the log.
    cmd = gate_cmd(
        "up", "-f", str(node.spec_path), "--log-format", "json", "--log-level", "warning"
    )
    proc, log = procs.spawn(f"node-{node.tmp.name}", cmd, core=core, cwd=node.tmp)
    node.proc = proc  # so that node.status() notices an exit
    node.log_path = log


def start_nodes(
    procs: Processes, layout: Layout, *, json_port: int, sse_port: int, big_port: int
) -> tuple[GateNode, GateNode]:
    """A with the three upstreams as static providers, B with none; each lists the other,
    B dials A. Returns once B lists A connected with all three models."""
    a_id, b_id = Identity.generate(), Identity.generate()
    upstreams = (("upstream", json_port), ("upstream-sse", sse_port), ("upstream-big", big_port))
    a_extra = (
        "    static:\n"
        + "".join(
            f"      - {{name: {name}, kind: openai, url: 'http://127.0.0.1:{port}/v1'}}\n"
            for name, port in upstreams
        )
        + f"  peers:\n    - {{name: {B_NAME}, id: {b_id.node_id.peer_id}}}\n"
        + f"  trust:\n    allow: [{{peer: {B_NAME}}}]\n"  # B uses A's engines
    )
    a = _node(procs.workdir, A_NAME, a_id, a_extra)
    b_extra = (
        f"  peers:\n    - {{name: {A_NAME}, id: {a_id.node_id.peer_id}, "
        f"addrs: ['/ip4/127.0.0.1/tcp/{a.p2p_port}']}}\n"
    )
    b = _node(procs.workdir, B_NAME, b_id, b_extra)
    _spawn(procs, a, core=layout.provider)
    _spawn(procs, b, core=layout.client)
    wanted = {JSON_MODEL, SSE_MODEL, BIG_MODEL}

    def linked() -> bool:
        peers = b.status() and b.rpc("peers.list")
        return any(p["state"] == "connected" and wanted <= set(p["models"]) for p in peers or [])

    try:
        for node in (a, b):
            node.wait_for(lambda n=node: n.status() is not None, timeout=30, what="node ready")
        # py-libp2p loads behind the ready node (1.5-2.3 s), then B dials and A says hello.
        b.wait_for(linked, timeout=60, what=f"{B_NAME} to list {A_NAME} with its models")
    except AssertionError as e:
        tails = "; ".join(f"{n.tmp.name}: {_tail(n.log_path, 4)}" for n in (a, b))
        raise Unavailable(f"{_one_line(str(e).splitlines()[0])} ({tails})") from e
    return a, b


def _wait_answering(port: int, *, timeout: float) -> None:
    """Both APIs answer the three models like the upstreams do, or Unavailable."""
    deadline = time.monotonic() + timeout
    problem: str | None = "not tried"
    while time.monotonic() < deadline:
        problem = (
            _answers(Endpoint(port, CHAT, JSON_MODEL), stream=False)
            or _answers(Endpoint(port, CHAT, SSE_MODEL), stream=True)
            or _answers(Endpoint(port, CHAT, BIG_MODEL), stream=False)
        )
        if problem is None:
            return
        time.sleep(0.1)
    raise Unavailable(f"port {port} does not answer like the upstream: {problem}")


# -- measuring -------------------------------------------------------------------------------


def _request(conn: Connection, body: bytes) -> Reply:
    reply = conn.request("POST", CHAT, body)
    if reply.status != 200:
        raise RuntimeError(f"port {conn.port} answered {reply.status}: {reply.body[:300]!r}")
    return reply


def _take(conn: Connection, body: bytes, into: Samples, count: int, *, stream: bool) -> None:
    for _ in range(count):
        reply = _request(conn, body)
        into.total.append(reply.total_s)
        into.nodes.add(reply.headers.get("x-gate-node", "?"))
        if stream:
            if reply.first_event_s is None:
                raise RuntimeError(f"a stream with no events: {reply.body[:300]!r}")
            into.first.append(reply.first_event_s)
            into.events.add(reply.events)
        else:
            into.body_bytes.add(len(reply.body))


def _alternate(
    paths: list[Route],
    body: bytes,
    pick: Callable[[Route], Samples],
    count: int,
    block: int,
    *,
    stream: bool,
) -> None:
    """`count` sequential requests per path, in turns of `block`, one connection per path."""
    conns = {p.key: Connection(p.port, timeout=60) for p in paths}
    try:
        done = 0
        while done < count:
            n = min(block, count - done)
            for path in paths:
                _take(conns[path.key], body, pick(path), n, stream=stream)
            done += n
    finally:
        for conn in conns.values():
            conn.close()


def _warm(paths: list[Route], plan: Plan, workdir: Path) -> None:
    """Fill the pools: Gate's upstream connections, B's idle streams, the models caches."""
    scratch = [Route(p.key, p.label, p.port) for p in paths]
    json_body = request_body(JSON_MODEL, stream=False)
    _alternate(scratch, json_body, lambda p: p.json, plan.warm, 50, stream=False)
    sse_body = request_body(SSE_MODEL, stream=True)
    _alternate(scratch, sse_body, lambda p: p.sse, max(5, plan.warm // 10), 10, stream=True)
    big_body = request_body(BIG_MODEL, stream=False)
    _alternate(scratch, big_body, lambda p: p.big, 2, 1, stream=False)
    for path in paths:
        _wrk(path, seconds=1, workdir=workdir)


def _wrk(path: Route, *, seconds: int, workdir: Path) -> WrkResult:
    """wrk at c=32, then wait until the path answers again (see `Route.outages`)."""
    body = request_body(JSON_MODEL, stream=False)
    result = run_wrk(_url(path), body, connections=CONCURRENCY, seconds=seconds, workdir=workdir)
    path.wrk_runs += 1
    # wrk's last requests are cut off, which cancels their forwards: give a broken link the
    # time to show (B learns of a closed connection about 0.2 s later), then probe.
    ended = time.monotonic()
    time.sleep(0.5)
    first: str | None = None
    conn = Connection(path.port, timeout=10)
    try:
        ok = 0
        while ok < 3:
            try:
                reply = conn.request("POST", CHAT, body)
                status, text = reply.status, reply.body[:160].decode("utf-8", "replace")
            except OSError as e:
                conn.close()
                status, text = 0, str(e)
            if status == 200:
                ok += 1
                continue
            ok = 0
            first = first or f"{status}: {text}"
            if time.monotonic() - ended > 60:
                raise RuntimeError(f"{path.label} still refuses 60 s after wrk ended: {first}")
            time.sleep(0.02)
    finally:
        conn.close()
    if first is not None:
        path.outages.append((time.monotonic() - ended, first))
    return result


def _url(path: Route) -> str:
    return f"http://127.0.0.1:{path.port}{CHAT}"


def measure(paths: list[Route], plan: Plan, workdir: Path) -> None:
    with _timed("warm-up"):
        _warm(paths, plan, workdir)
    with _timed(f"JSON at c=1, {plan.latency} requests per path"):
        body = request_body(JSON_MODEL, stream=False)
        _alternate(paths, body, lambda p: p.json, plan.latency, plan.block, stream=False)
    with _timed(f"SSE at c=1, {plan.streams} streams per path"):
        body = request_body(SSE_MODEL, stream=True)
        _alternate(paths, body, lambda p: p.sse, plan.streams, plan.block // 5, stream=True)
    with _timed(f"bulk, {plan.bulk} responses of {BIG_BYTES >> 20} MiB per path"):
        body = request_body(BIG_MODEL, stream=False)
        _alternate(paths, body, lambda p: p.big, plan.bulk, 2, stream=False)
    for round_ in range(plan.rounds):
        for path in paths:
            with _timed(f"wrk c={CONCURRENCY} {path.key} (round {round_ + 1}/{plan.rounds})"):
                path.rates.append(_wrk(path, seconds=plan.rate_s, workdir=workdir))


# -- profiling -------------------------------------------------------------------------------


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile(
    nodes: dict[str, GateNode], hop: Route, out: Path, seconds: int, workdir: Path
) -> tuple[WrkResult, dict[str, Path]]:
    """wrk at c=32 through the hop while py-spy samples both nodes, with `--gil`: only
    samples where a thread holds the GIL count, so waiting in epoll does not. The recording
    starts a second into the load and ends before it does, so every sample is under load."""
    binary = _py_spy()
    if binary is None:
        raise Unavailable("py-spy is not installed (pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    raws = {name: out / f"node-{name}.raw" for name in nodes}
    spies: list[subprocess.Popen[bytes]] = []
    body = request_body(JSON_MODEL, stream=False)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(
            run_wrk, _url(hop), body, connections=CONCURRENCY, seconds=seconds + 3, workdir=workdir
        )
        try:
            time.sleep(1)
            for name, node in nodes.items():
                assert node.proc is not None
                cmd = [binary, "record", "--gil", "-f", "raw", "-r", str(SPY_HZ)]
                cmd += ["-d", str(seconds), "-p", str(node.proc.pid), "-o", str(raws[name])]
                with (out / f"py-spy-{name}.log").open("wb") as log:
                    spies.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            for spy in spies:
                spy.wait(seconds + 30)
        finally:
            for spy in spies:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait()
        result = load.result()
    missing = [name for name, raw in raws.items() if not raw.exists()]
    if missing:
        logs = "; ".join(_tail(out / f"py-spy-{n}.log", 3) for n in missing)
        raise Unavailable(f"py-spy wrote nothing for {', '.join(missing)}: {logs}")
    return result, raws


SPY_HZ = 100
_LINE = re.compile(r":\d+\)$")
# Frames that run on behalf of whoever called them: their time is charged to that caller.
_INFRA = ("trio/", "anyio/", "outcome/", "contextlib.py", "<frozen", "<attrs generated")
# The frames every sample has (interpreter start, the CLI, the event loop's entry).
_SPINE = ("<frozen runpy>", "gate_runner/__main__.py", "gate_runner/cli/")


def _file(frame: str) -> str:
    """`func (path:line)` -> `path`."""
    at = frame.rfind(" (")
    return _LINE.sub("", frame[at + 2 :]).rstrip(")") if at >= 0 else frame


def _owner(path: str) -> str:
    """A frame's package, two levels deep for ours and libp2p's (`gate_runner/p2p`,
    `libp2p/stream_muxer`), one for the rest."""
    parts = path.split("/")
    if parts[0] in ("gate_runner", "libp2p") and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def _charged(frames: list[str]) -> str:
    """The package a sample's time belongs to: the leaf's, or for a leaf in trio, anyio or
    contextlib, the nearest caller's; with no caller but the spine, the run loop itself."""
    for frame in reversed(frames):
        path = _file(frame)
        if path.startswith(_SPINE):
            return "trio's run loop (scheduling, epoll)"
        if not path.startswith(_INFRA):
            return _owner(path)
    return "trio's run loop (scheduling, epoll)"


def summarize(raw: Path, *, seconds: int, top: int = 25) -> list[str]:
    """Markdown: the top inclusive frames (below the spine), the self time by package, and
    the self time with trio's and anyio's work charged to the package that asked for it."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_LINE.sub(")", f.strip()) for f in stack.split(";") if f.strip()]
        for frame in dict.fromkeys(frames):  # once per stack: recursion counts once
            inclusive[frame] += n
        if frames:
            own[_owner(_file(frames[-1]))] += n
            charged[_charged(frames)] += n
    if not total:
        return ["(no samples)"]
    busy = total / (seconds * SPY_HZ)
    spine = [f for f, n in inclusive.items() if n >= 0.97 * total]
    lines = [
        f"{total} samples holding the GIL in {seconds} s at {SPY_HZ} Hz: the process ran Python "
        f"{busy:.0%} of the time. Left out of the first table: the {len(spine)} frames in 97% "
        "or more of the samples (interpreter start, the CLI, trio's run loop).",
        "",
        "| inclusive | frame |",
        "|---:|---|",
    ]
    kept = [(f, n) for f, n in inclusive.most_common() if f not in spine][:top]
    lines += [f"| {100 * n / total:.1f}% | `{frame}` |" for frame, n in kept]
    lines += ["", "| self | package of the leaf frame | self, trio/anyio charged to the caller |"]
    lines += ["|---:|---|---:|"]
    keys = sorted(set(own) | set(charged), key=lambda k: -max(own[k], charged[k]))[:14]
    lines += [
        f"| {100 * own[k] / total:.1f}% | {k} | {100 * charged[k] / total:.1f}% |" for k in keys
    ]
    return lines


# -- tables ----------------------------------------------------------------------------------


def print_tables(direct: Route, hop: Route, plan: Plan) -> None:
    d50, h50 = _ms_of(direct.json.total, 50), _ms_of(hop.json.total, 50)
    d99, h99 = _ms_of(direct.json.total, 99), _ms_of(hop.json.total, 99)
    d_rate, h_rate = _best_rate(direct), _best_rate(hop)
    dr = d_rate.rate if d_rate else None
    hr = h_rate.rate if h_rate else None
    rounds = f"best of {plan.rounds}" if plan.rounds > 1 else "one run"
    print(
        f"\n### Non-streaming, {len(COMPLETION)} B body: latency at c=1 ({plan.latency} "
        f"sequential requests per path, interleaved), req/s at c={CONCURRENCY} "
        f"(wrk, {plan.rate_s} s, {rounds})\n"
    )
    print(
        f"| path | p50 c=1 | p99 c=1 | req/s c={CONCURRENCY} | share of direct |\n"
        "|---|---:|---:|---:|---:|"
    )
    for path, p50, p99, rate in ((direct, d50, d99, dr), (hop, h50, h99, hr)):
        share = "-" if rate is None or not dr else f"{100 * rate / dr:.1f}%"
        print(f"| {path.label} | {_ms(p50)} | {_ms(p99)} | {_num(rate)} | {share} |")
    print(
        f"| **added by the hop** | **{_ms(h50 - d50, signed=True)}** "
        f"| **{_ms(h99 - d99, signed=True)}** | hop/direct **{_x(hr, dr)}** | |"
    )

    dt50, ht50 = _ms_of(direct.sse.first, 50), _ms_of(hop.sse.first, 50)
    dt99, ht99 = _ms_of(direct.sse.first, 99), _ms_of(hop.sse.first, 99)
    ds, hs = _pct(direct.sse.total, 50), _pct(hop.sse.total, 50)
    print(
        f"\n### Streaming, {EVENTS} SSE events per response (one write each upstream): time to "
        f"first event and whole stream at c=1 ({plan.streams} streams per path, interleaved)\n"
    )
    print(
        "| path | TTFE p50 | TTFE p99 | stream p50 | events/s c=1 | events per stream |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for path, t50, t99, whole in ((direct, dt50, dt99, ds), (hop, ht50, ht99, hs)):
        events = ",".join(str(e) for e in sorted(path.sse.events))
        print(
            f"| {path.label} | {_ms(t50)} | {_ms(t99)} | {_ms(whole * 1000)} "
            f"| {_num(EVENTS / whole)} | {events} |"
        )
    print(
        f"| **added by the hop** | **{_ms(ht50 - dt50, signed=True)}** "
        f"| {_ms(ht99 - dt99, signed=True)} | {_ms((hs - ds) * 1000, signed=True)} "
        f"| hop/direct {_x(EVENTS / hs, EVENTS / ds)} | |"
    )

    mb = BIG_BYTES / 1e6
    print(
        f"\n### Bulk: one non-streamed {BIG_BYTES >> 20} MiB chat completion (nginx, static "
        f"file) at c=1 ({plan.bulk} per path, interleaved); MB = 10^6 bytes\n"
    )
    print(
        "| path | time p50 | MB/s at p50 | best MB/s | share of direct |\n|---|---:|---:|---:|---:|"
    )
    d_mbs = mb / _pct(direct.big.total, 50)
    for path in (direct, hop):
        p50 = _pct(path.big.total, 50)
        best = mb / min(path.big.total)
        print(
            f"| {path.label} | {_ms(p50 * 1000)} | {mb / p50:,.1f} | {best:,.1f} "
            f"| {100 * (mb / p50) / d_mbs:.1f}% |"
        )

    notes = []
    for path in (direct, hop):
        for i, result in enumerate(path.rates, 1):
            if result.errors or result.bad_status:
                notes.append(
                    f"{path.label}, wrk round {i}: {result.errors} socket errors/timeouts, "
                    f"{result.bad_status} responses >= 400 of {result.requests}"
                )
        sizes = path.big.body_bytes
        if sizes != {BIG_BYTES}:
            notes.append(f"{path.label}: bulk bodies of {sorted(sizes)} bytes, not {BIG_BYTES}")
    if plan.rounds > 1:
        for path in (direct, hop):
            each = ", ".join(_num(r.rate) for r in path.rates)
            notes.append(f"{path.label}: req/s c={CONCURRENCY} per round: {each}")
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")

    print(
        f"\n### Does the path answer after a wrk run? wrk ends by closing its {CONCURRENCY} "
        "connections with requests in flight, so Gate cancels those forwards\n"
    )
    print("| path | runs followed by refusals | longest until it answered | first refusal |")
    print("|---|---:|---:|---|")
    for path in (direct, hop):
        longest = max((s for s, _ in path.outages), default=None)
        first = _one_line(path.outages[0][1], 160) if path.outages else "-"
        print(
            f"| {path.label} | {len(path.outages)} of {path.wrk_runs} "
            f"| {'-' if longest is None else f'{longest:.1f} s'} | {first} |"
        )

    print("\n### Against the targets\n")
    print("| target | measured | verdict |\n|---|---:|---|")
    added = h50 - d50
    print(
        f"| added p50 at c=1 <= {TARGET_ADDED_P50_MS:g} ms | {_ms(added, signed=True)} "
        f"| {_verdict(added <= TARGET_ADDED_P50_MS)} |"
    )
    share = hr / dr if hr is not None and dr else None
    print(
        f"| req/s c={CONCURRENCY} through the hop >= {TARGET_RATE_SHARE:.0%} of direct "
        f"| {'-' if share is None else f'{share:.1%}'} "
        f"| {_verdict(None if share is None else share >= TARGET_RATE_SHARE)} |"
    )


# -- the run ---------------------------------------------------------------------------------


def _check_nodes(direct: Route, hop: Route) -> None:
    """Every timed reply on both paths came from A's upstreams (B relays A's X-Gate-Node)."""
    for path in (direct, hop):
        for samples in (path.json, path.sse, path.big):
            if samples.nodes != {A_NAME}:
                raise RuntimeError(
                    f"{path.label}: answered by {sorted(samples.nodes)}, expected {A_NAME}"
                )


def _header(layout: Layout) -> None:
    print("# P2P hop (bench/p2p.py)\n")
    print(
        f"- machine: {os.cpu_count()} cores, {platform.platform()}, Python {sys.version.split()[0]}"
    )
    print(f"- pinning: {layout.describe()}")
    print(f"- load average before the run: {_load()} (other work on the machine skews the rows)")
    print(
        f"- upstreams (on A's side): {_nginx_version()} answering every POST with the same "
        f"{len(COMPLETION)} B chat completion, and a {BIG_BYTES >> 20} MiB one from a static "
        f"file for `{BIG_MODEL}`; the raw trio SSE upstream of bench/gateway.py ({EVENTS} events, "
        "one HTTP/1.1 chunk and one write each)"
    )
    print(
        "- direct: client -> A's API -> upstream. hop: client -> B's API -> libp2p "
        "(/gate/http/1, warm pooled streams) -> A -> upstream; B has no provider and lists A "
        "under spec.peers; A trusts B (spec.trust.allow). Both nodes run `gate up` with logging "
        "at warning"
    )
    print(
        f"- load generators: a blocking Python HTTP/1.1 client (bench/_loadgen.py) for the c=1 "
        f"figures, timed from the request's send to the last byte; {_wrk_version()} (one "
        f"thread, {CONCURRENCY} kept-alive connections) for req/s"
    )


def run(
    plan: Plan, *, pin: bool, profile_dir: Path | None, profile_s: int, keep: Path | None
) -> None:
    layout = Layout.detect(pin=pin)
    if layout.client is not None:
        # The Python client and wrk (a child) run on the client's core, with B.
        os.sched_setaffinity(0, {layout.client})
    _header(layout)
    direct = Route("direct", "A direct (client -> A -> upstream)", 0)
    hop = Route("hop", "through B then A (client -> B -> libp2p -> A -> upstream)", 0)
    profiles: dict[str, list[str]] = {}
    profile_rate: WrkResult | None = None
    with ExitStack() as stack:
        if keep is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-p2p-")))
        else:
            keep.mkdir(parents=True)  # a new directory: logs of two runs never mix
            workdir = keep
        # Every process below is registered on `stack`, so closing it (on any exit, error or
        # Ctrl-C) stops each process group, SIGTERM then SIGKILL, before the directory goes.
        procs = Processes(stack, layout.cores(), workdir)
        try:
            with _timed("upstreams and nodes"):
                json_port, sse_port = start_upstreams(procs, core=layout.provider)
                big_port = start_big(procs, core=layout.provider)
                a, b = start_nodes(
                    procs, layout, json_port=json_port, sse_port=sse_port, big_port=big_port
                )
                _wait_answering(a.api_port, timeout=20)
                _wait_answering(b.api_port, timeout=20)
        except Unavailable as e:
            raise SystemExit(f"the set-up failed: {e}") from e
        direct.port, hop.port = a.api_port, b.api_port
        paths = [direct, hop]
        try:
            measure(paths, plan, workdir)
            _check_nodes(direct, hop)
        except (RuntimeError, OSError) as e:
            tails = "\n".join(f"- node {n.tmp.name}: {_tail(n.log_path, 6)}" for n in (a, b))
            raise SystemExit(f"the measurement failed: {e}\nlast log lines:\n{tails}") from e
        if profile_dir is not None:
            with _timed(f"py-spy on both nodes, wrk c={CONCURRENCY} through the hop"):
                try:
                    profile_rate, raws = profile(
                        {"B": b, "A": a}, hop, profile_dir, profile_s, workdir
                    )
                    profiles = {n: summarize(raw, seconds=profile_s) for n, raw in raws.items()}
                except Unavailable as e:
                    profiles = {"both": [f"not profiled: {e}"]}
    print(f"- load average after the run: {_load()}")
    print_tables(direct, hop, plan)
    if profile_dir is not None:
        under = f" under {_num(profile_rate.rate)} req/s" if profile_rate else ""
        print(
            f"\n### Where the time goes: py-spy --gil, wrk c={CONCURRENCY} through the hop for "
            f"{profile_s} s{under} (raw files in {profile_dir})"
        )
        for name, lines in profiles.items():
            print(f"\n#### node {name}\n")
            print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    parser.add_argument(
        "--no-pin", action="store_true", help="let the OS place A, B and the load generator"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the tables' runs, record both nodes with py-spy under the hop's load and "
        "print the top frames; the raw files go to DIR",
    )
    parser.add_argument(
        "--profile-seconds", type=int, default=8, help="how long py-spy records (default 8)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="work in DIR (created; must not exist) and keep the nodes' specs and logs there",
    )
    args = parser.parse_args()
    missing = _deps_missing()
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}. Install them with: {DEPS}")
    plan = Plan.pick(quick=args.quick)
    run(
        plan,
        pin=not args.no_pin,
        profile_dir=args.profile.resolve() if args.profile else None,
        profile_s=max(1, args.profile_seconds),
        keep=args.keep.resolve() if args.keep else None,
    )


if __name__ == "__main__":
    main()
