"""Gateway overhead: Gate's API in front of a fast upstream, measured in one run against the
upstream called directly, nginx proxy_pass, an empty hypercorn-trio app (the stack's floor)
and LiteLLM's proxy (DESIGN.md, section 13). Prints two markdown tables of ratios.

    python bench/gateway.py            # about 3 minutes
    python bench/gateway.py --quick    # smoke run, under a minute
    python bench/gateway.py --only gate,floor
    python bench/gateway.py --only gate,floor --no-stream --profile /tmp/prof

Needs nginx, wrk and the LiteLLM venv: scripts/bench-deps.sh installs what is missing.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
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
    JSON_MODELS,
    SSE_BODY,
    SSE_MODEL,
    request_body,
)
from _loadgen import Connection, StreamResult, WrkResult, run_wrk, time_first_event  # noqa: E402

from tests.rig import free_port, gate_cmd, node_yaml  # noqa: E402

SERVERS = BENCH / "_gateway_servers.py"
DEPS = ROOT / "scripts" / "bench-deps.sh"
LITELLM_VENV = Path(
    os.environ.get("LITELLM_VENV", Path.home() / ".cache" / "gate-bench" / "litellm-venv")
)
ROWS = ("direct", "nginx", "floor", "litellm", "gate")
LABELS = {
    "direct": "direct (the upstream)",
    "nginx": "nginx proxy_pass (keepalive upstream)",
    "floor": "hypercorn-trio, empty ASGI app (floor)",
    "litellm": "LiteLLM proxy, 1 worker",
    "gate": "Gate",
}
CHAT = "/v1/chat/completions"

# Gate's targets from the issue, printed next to its figures.
TARGET_FLOOR_SHARE = 0.80
TARGET_ADDED_P50_MS = 1.5
TARGET_EVENTS_PER_S = 10_000


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs. wrk takes whole seconds only."""

    warm_s: int
    latency_s: int
    rate_s: int
    events_s: int
    ttfe_requests: int
    ttfe_max_s: float
    repeat: int = 1
    stream_concurrency: int = 16

    @classmethod
    def pick(cls, *, quick: bool, repeat: int | None) -> Plan:
        if quick:
            return cls(1, 1, 1, 1, ttfe_requests=50, ttfe_max_s=2, repeat=repeat or 1)
        # Two rounds by default: the machines are shared, and the best of two interleaved
        # rounds moves less between runs than one round twice as long.
        return cls(1, 3, 4, 2, ttfe_requests=200, ttfe_max_s=6, repeat=repeat or 2)


class Unavailable(Exception):
    """A row that cannot be measured here (not installed, did not start): printed as n/a with
    the reason, never estimated."""


@dataclass(frozen=True)
class Endpoint:
    port: int
    path: str
    model: str


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    json: Endpoint | None  # None: streaming only
    sse: Endpoint | None
    pid: int | None = None  # the server's process, when this bench started it


@dataclass
class Row:
    key: str
    label: str
    reason: str = ""  # set when the row is n/a
    c1: WrkResult | None = None
    c64: WrkResult | None = None
    sse_reason: str = ""
    ttfe: StreamResult | None = None
    ev1: WrkResult | None = None
    evn: WrkResult | None = None
    notes: list[str] = field(default_factory=list)


# -- processes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cores:
    """Load generator and upstreams on one core, the server under test on the other."""

    gen: int | None
    proxy: int | None
    taskset: bool

    @classmethod
    def detect(cls) -> Cores:
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cores) < 2:
            return cls(None, None, bool(shutil.which("taskset")))
        return cls(cores[0], cores[1], bool(shutil.which("taskset")))

    def describe(self) -> str:
        if self.proxy is None:
            return "not pinned (fewer than 2 usable cores)"
        how = "taskset -c" if self.taskset else "sched_setaffinity (taskset is missing)"
        return (
            f"server under test on core {self.proxy}; load generator (wrk, the Python client) "
            f"and the upstreams on core {self.gen}, so in the direct row client and server "
            f"share core {self.gen} ({how})"
        )


class Processes:
    """Every process this bench starts, each in its own process group so that its children go
    too, stopped when the stack closes, even on error."""

    def __init__(self, stack: ExitStack, cores: Cores, workdir: Path) -> None:
        self._stack = stack
        self._cores = cores
        self.workdir = workdir

    def spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        core: int | None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.workdir / f"{name}.log"
        pin = core is not None
        if pin and self._cores.taskset:
            cmd = ["taskset", "-c", str(core), *cmd]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd or self.workdir,
                start_new_session=True,
                preexec_fn=(
                    (lambda: os.sched_setaffinity(0, {core}))
                    if pin and not self._cores.taskset and core is not None
                    else None
                ),
            )
        self._stack.callback(_stop, proc)
        return proc, log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    # A group's other members may outlive its leader: end them too.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(log: Path, lines: int = 8) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


def _one_line(reason: str, limit: int = 300) -> str:
    """A reason fit for a table cell."""
    text = " ".join(reason.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def wait_http(
    port: int,
    path: str,
    *,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float,
    what: str,
) -> None:
    """Poll GET `path` until it answers 200; Unavailable when the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise Unavailable(f"{what} exited with {proc.returncode}: {_tail(log, 3)}")
        conn = Connection(port, timeout=2)
        try:
            reply = conn.request("GET", path)
            if reply.status == 200:
                return
            last = f"{path} answered {reply.status}"
        except OSError as e:
            last = f"{path}: {e}"
        finally:
            conn.close()
        time.sleep(0.05)
    raise Unavailable(f"{what} not ready after {timeout:.0f} s ({last})")


# -- the servers -----------------------------------------------------------------------------

_NGINX_MAIN = """\
{user}worker_processes 1;
pid {dir}/{name}.pid;
error_log {dir}/{name}.error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/{name}-tmp/body;
  proxy_temp_path {dir}/{name}-tmp/proxy;
  fastcgi_temp_path {dir}/{name}-tmp/fastcgi;
  uwsgi_temp_path {dir}/{name}-tmp/uwsgi;
  scgi_temp_path {dir}/{name}-tmp/scgi;
  keepalive_timeout 300s;
  keepalive_requests 100000000;
{body}
}}
"""

_UPSTREAM_SERVER = """\
  server {{
    listen 127.0.0.1:{port};
    location = /v1/chat/completions {{ default_type application/json; return 200 '{completion}'; }}
    location = /v1/models {{ default_type application/json; return 200 '{models}'; }}
    # The same 64 events as one static body, sent in one write: a reference only.
    # nginx answers POST to a static file with 405: serve the file for it anyway.
    location = /burst/v1/chat/completions {{
      default_type text/event-stream; alias {sse_file}; error_page 405 =200 $uri;
    }}
  }}
"""

_PROXY_SERVER = """\
  upstream json_upstream {{ server 127.0.0.1:{json_port}; keepalive 128; }}
  upstream sse_upstream {{ server 127.0.0.1:{sse_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    location /v1/ {{ proxy_pass http://json_upstream; }}
    location /sse/v1/ {{ proxy_pass http://sse_upstream/v1/; proxy_buffering off; }}
  }}
"""


def _nginx(procs: Processes, name: str, body: str, *, port: int, core: int | None) -> None:
    directory = procs.workdir
    (directory / f"{name}-tmp").mkdir(exist_ok=True)
    conf = directory / f"{name}.conf"
    # As root, nginx's worker would run as nobody and not read the 0700 temp dir.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    conf.write_text(_NGINX_MAIN.format(user=user, dir=directory, name=name, body=body))
    cmd = ["nginx", "-p", str(directory), "-e", str(directory / f"{name}.error.log")]
    proc, log = procs.spawn(name, [*cmd, "-c", str(conf)], core=core)
    wait_http(port, "/v1/models", proc=proc, log=log, timeout=10, what=name)


def start_upstreams(procs: Processes, *, core: int | None) -> tuple[int, int]:
    """nginx with the fixed JSON body, and the per-event SSE upstream: (json port, sse port)."""
    for payload in (COMPLETION, JSON_MODELS):
        assert b"'" not in payload and b"\\" not in payload and b"$" not in payload
    sse_file = procs.workdir / "burst.sse"
    sse_file.write_bytes(SSE_BODY)
    json_port, sse_port = free_port(), free_port()
    body = _UPSTREAM_SERVER.format(
        port=json_port,
        completion=COMPLETION.decode(),
        models=JSON_MODELS.decode(),
        sse_file=sse_file,
    )
    _nginx(procs, "upstream", body, port=json_port, core=core)
    cmd = [sys.executable, str(SERVERS), "sse", str(sse_port)]
    proc, log = procs.spawn("sse-upstream", cmd, core=core)
    wait_http(sse_port, "/v1/models", proc=proc, log=log, timeout=10, what="the SSE upstream")
    return json_port, sse_port


def start_nginx_proxy(procs: Processes, cores: Cores, json_port: int, sse_port: int) -> Target:
    port = free_port()
    body = _PROXY_SERVER.format(port=port, json_port=json_port, sse_port=sse_port)
    _nginx(procs, "nginx-proxy", body, port=port, core=cores.proxy)
    return Target(
        "nginx",
        LABELS["nginx"],
        Endpoint(port, CHAT, JSON_MODEL),
        Endpoint(port, "/sse" + CHAT, SSE_MODEL),
    )


def start_floor(procs: Processes, cores: Cores) -> Target:
    port = free_port()
    proc, log = procs.spawn(
        "floor", [sys.executable, str(SERVERS), "floor", str(port)], core=cores.proxy
    )
    wait_http(port, "/v1/models", proc=proc, log=log, timeout=20, what="the floor app")
    return Target(
        "floor",
        LABELS["floor"],
        Endpoint(port, CHAT, JSON_MODEL),
        Endpoint(port, CHAT, SSE_MODEL),
    )


def litellm_version() -> str | None:
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def start_litellm(
    procs: Processes, cores: Cores, json_port: int, sse_port: int, version: str | None
) -> Target:
    binary = LITELLM_VENV / "bin" / "litellm"
    if version is None or not binary.exists():
        raise Unavailable(f"LiteLLM is not installed in {LITELLM_VENV} (run {DEPS})")
    port = free_port()
    config = procs.workdir / "litellm.yaml"
    models = []
    for name, upstream in ((JSON_MODEL, json_port), (SSE_MODEL, sse_port)):
        params = {
            "model": f"openai/{name}",
            "api_base": f"http://127.0.0.1:{upstream}/v1",
            "api_key": "sk-bench",
        }
        models.append({"model_name": name, "litellm_params": params})
    # JSON is valid YAML; no master key and no database: the lightest set-up it has.
    config.write_text(json.dumps({"model_list": models, "litellm_settings": {"telemetry": False}}))
    env = {
        # Otherwise it fetches its model price list from GitHub at start-up (3 tries).
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MODE": "PRODUCTION",
        # Gate on loopback takes no key either; LiteLLM refuses to start keyless without this.
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
        "TMPDIR": str(procs.workdir),
    }
    cmd = [
        str(binary),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    proc, log = procs.spawn("litellm", cmd, core=cores.proxy, env=env)
    wait_http(port, "/health/liveliness", proc=proc, log=log, timeout=120, what="LiteLLM")
    return Target(
        "litellm",
        f"LiteLLM {version} proxy, 1 worker",
        Endpoint(port, CHAT, JSON_MODEL),
        Endpoint(port, CHAT, SSE_MODEL),
    )


def _gate_model(port: int, provider: str, fallback: str) -> str:
    """The id Gate lists for the upstream's model, whatever naming it settles on."""
    conn = Connection(port)
    try:
        reply = conn.request("GET", "/v1/models")
        entries = json.loads(reply.body).get("data", []) if reply.status == 200 else []
    except (OSError, ValueError, AttributeError):
        return fallback
    finally:
        conn.close()
    for entry in entries:
        gate = entry.get("gate") or {}
        if gate.get("provider") == provider or entry.get("id") == fallback:
            return str(entry["id"])
    return fallback


def start_gate(procs: Processes, cores: Cores, json_port: int, sse_port: int) -> Target:
    components = ROOT / "gate_runner" / "components"
    # Without the API component /healthz never answers: do not wait long for it.
    present = (components / "api").exists() or (components / "api.py").exists()
    home = Path(tempfile.mkdtemp(prefix="gate-", dir=procs.workdir))  # one per round
    api = free_port()
    extra = (
        "    static:\n"
        f"      - {{name: upstream, kind: openai, url: 'http://127.0.0.1:{json_port}/v1'}}\n"
        f"      - {{name: upstream-sse, kind: openai, url: 'http://127.0.0.1:{sse_port}/v1'}}\n"
    )
    spec = home / "gate.yaml"
    spec.write_text(
        node_yaml(home, name="bench", control=free_port(), api=api, p2p=free_port(), extra=extra)
    )
    # Request logging off, as for every other row (nginx access_log off, no hypercorn log).
    cmd = [*gate_cmd("up", "-f", str(spec)), "--log-format", "json", "--log-level", "warning"]
    proc, log = procs.spawn("gate", cmd, core=cores.proxy, cwd=home)
    try:
        wait_http(api, "/healthz", proc=proc, log=log, timeout=30 if present else 8, what="gate")
    except Unavailable as e:
        missing = "" if present else "gate_runner/components/api is missing; "
        raise Unavailable(f"api component not available: {missing}{e}") from e
    # /healthz may answer before the providers' models are listed: wait for a completion.
    deadline = time.monotonic() + 15
    json_model, sse_model = JSON_MODEL, SSE_MODEL
    while time.monotonic() < deadline:
        json_model = _gate_model(api, "upstream", JSON_MODEL)
        sse_model = _gate_model(api, "upstream-sse", SSE_MODEL)
        if _answers(Endpoint(api, CHAT, json_model), stream=False) is None:
            break
        time.sleep(0.1)
    return Target(
        "gate",
        LABELS["gate"],
        Endpoint(api, CHAT, json_model),
        Endpoint(api, CHAT, sse_model),
        pid=proc.pid,
    )


# -- measuring -------------------------------------------------------------------------------


def _answers(endpoint: Endpoint, *, stream: bool) -> str | None:
    """None when `endpoint` answers like the upstream, else what is wrong."""
    conn = Connection(endpoint.port, timeout=30)
    try:
        reply = conn.request("POST", endpoint.path, request_body(endpoint.model, stream=stream))
    except OSError as e:
        return f"POST {endpoint.path}: {e}"
    finally:
        conn.close()
    if reply.status != 200:
        return f"POST {endpoint.path} answered {reply.status}: {reply.body[:200]!r}"
    if stream:
        return None if reply.events > 0 else f"a stream with no events: {reply.body[:200]!r}"
    try:
        doc = json.loads(reply.body)
        doc["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return f"not a chat completion: {reply.body[:200]!r}"
    return None


def _url(endpoint: Endpoint) -> str:
    return f"http://127.0.0.1:{endpoint.port}{endpoint.path}"


def _check(row: Row, what: str, result: WrkResult) -> WrkResult:
    if result.errors or result.bad_status:
        row.notes.append(
            f"{what}: {result.errors} socket errors/timeouts, {result.bad_status} responses >= 400"
            f" of {result.requests}"
        )
    return result


def measure(target: Target, plan: Plan, workdir: Path, *, streaming: bool = True) -> Row:
    row = Row(target.key, target.label)
    if target.json is not None:
        try:
            _measure_json(row, target.json, plan, workdir)
        except (RuntimeError, OSError) as e:
            row.reason = str(e)
            return row
    if not streaming or target.sse is None:
        row.sse_reason = "not measured"
        return row
    try:
        _measure_stream(row, target.sse, plan, workdir)
    except (RuntimeError, OSError) as e:
        row.sse_reason = str(e)
    return row


def _measure_json(row: Row, endpoint: Endpoint, plan: Plan, workdir: Path) -> None:
    problem = _answers(endpoint, stream=False)
    if problem:
        raise RuntimeError(problem)
    body = request_body(endpoint.model, stream=False)
    url = _url(endpoint)
    run_wrk(url, body, connections=8, seconds=plan.warm_s, workdir=workdir)
    row.c1 = _check(
        row, "c=1", run_wrk(url, body, connections=1, seconds=plan.latency_s, workdir=workdir)
    )
    row.c64 = _check(
        row, "c=64", run_wrk(url, body, connections=64, seconds=plan.rate_s, workdir=workdir)
    )


def _measure_stream(row: Row, endpoint: Endpoint, plan: Plan, workdir: Path) -> None:
    problem = _answers(endpoint, stream=True)
    if problem:
        raise RuntimeError(problem)
    body = request_body(endpoint.model, stream=True)
    row.ttfe = time_first_event(
        endpoint.port,
        endpoint.path,
        body,
        requests=plan.ttfe_requests,
        warmup=max(5, plan.ttfe_requests // 10),
        max_seconds=plan.ttfe_max_s,
    )
    url = _url(endpoint)
    row.ev1 = _check(
        row,
        "stream c=1",
        run_wrk(url, body, connections=1, seconds=plan.events_s, workdir=workdir),
    )
    n = plan.stream_concurrency
    row.evn = _check(
        row,
        f"stream c={n}",
        run_wrk(url, body, connections=n, seconds=plan.events_s, workdir=workdir),
    )


def best_of(a: Row, b: Row) -> Row:
    """Two rounds of one row merged, each figure the better one: noise on a shared machine
    only ever makes a server look slower."""
    if a.reason or b.reason:
        kept = b if a.reason else a
        other = a if a.reason else b
        if other.reason and not kept.reason:
            kept.notes.append(f"one round failed: {other.reason}")
        return kept

    def fast(
        x: WrkResult | None, y: WrkResult | None, key: Callable[[WrkResult], float]
    ) -> WrkResult | None:
        return x if y is None or (x is not None and key(x) <= key(y)) else y

    merged = Row(a.key, a.label, notes=a.notes + b.notes)
    merged.c1 = fast(a.c1, b.c1, lambda r: r.p50_ms)
    merged.c64 = fast(a.c64, b.c64, lambda r: -r.rate)
    merged.ev1 = fast(a.ev1, b.ev1, lambda r: -r.rate)
    merged.evn = fast(a.evn, b.evn, lambda r: -r.rate)
    merged.sse_reason = a.sse_reason if a.sse_reason and b.sse_reason else ""
    ttfes = [t for t in (a.ttfe, b.ttfe) if t is not None]
    merged.ttfe = min(ttfes, key=lambda t: t.ttfe_p50_ms) if ttfes else None
    if merged.sse_reason == "" and merged.ttfe is None:
        merged.sse_reason = a.sse_reason or b.sse_reason
    return merged


# -- profiling -------------------------------------------------------------------------------

PROFILE_CONCURRENCY = 64


def profile_gate(target: Target, out: Path, seconds: int, workdir: Path) -> list[str]:
    """wrk at c=64 on Gate while py-spy samples it with `--gil`: only samples where Gate holds
    the GIL count, so waiting in epoll does not. The recording starts a second into the load
    and ends before it does. Returns the summary in bench/p2p.py's format."""
    # bench/p2p.py imports this module, so it is imported here, late.
    from p2p import SPY_HZ, summarize

    beside = Path(sys.executable).parent / "py-spy"
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if spy is None:
        raise Unavailable("py-spy is not installed (pip install py-spy)")
    if target.json is None or target.pid is None:
        raise Unavailable("Gate did not start")
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "gate.raw"
    url = _url(target.json)
    body = request_body(target.json.model, stream=False)
    run_wrk(url, body, connections=8, seconds=1, workdir=workdir)
    with ThreadPoolExecutor(1) as pool:
        load = pool.submit(
            run_wrk,
            url,
            body,
            connections=PROFILE_CONCURRENCY,
            seconds=seconds + 3,
            workdir=workdir,
        )
        time.sleep(1)
        cmd = [spy, "record", "--gil", "-f", "raw", "-r", str(SPY_HZ), "-d", str(seconds)]
        cmd += ["-p", str(target.pid), "-o", str(raw)]
        done = subprocess.run(cmd, capture_output=True, timeout=seconds + 30, check=False)
        rate = load.result().rate
    if not raw.exists():
        raise Unavailable(f"py-spy wrote nothing: {(done.stderr or done.stdout)[-300:]!r}")
    title = (
        f"\n### Where Gate's time goes: py-spy --gil, wrk c={PROFILE_CONCURRENCY} for "
        f"{seconds} s at {_num(rate)} req/s (raw file: {raw})\n"
    )
    return [title, *summarize(raw, seconds=seconds)]


# -- tables ----------------------------------------------------------------------------------


def _ms(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f} ms" if signed else f"{value:.3f} ms"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x" if value / base >= 0.1 else f"{value / base:.3f}x"


def _share(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{100 * value / base:.1f}%"


def _events_per_s(result: WrkResult | None) -> float | None:
    # Each stream relays the upstream's 64 events, whatever chunking the proxy chose.
    return None if result is None else result.rate * EVENTS


def _print_streaming(rows: list[Row], plan: Plan, direct: Row | None) -> None:
    n = plan.stream_concurrency
    d_ttfe = direct.ttfe.ttfe_p50_ms if direct and direct.ttfe else None
    d_ev1 = _events_per_s(direct.ev1) if direct else None
    d_evn = _events_per_s(direct.evn) if direct else None
    print(
        f"\n### Streaming, {EVENTS} SSE events per response: time to first event at c=1 "
        f"({plan.ttfe_requests} streams at most), events/s at c=1 and c={n} "
        f"({plan.events_s} s each)\n"
    )
    print(
        f"| row | TTFE p50 | added TTFE p50 | events/s c=1 | share of direct "
        f"| events/s c={n} | share of direct | events seen |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for row in rows:
        if row.reason or row.sse_reason:
            reason = _one_line(row.reason or row.sse_reason)
            print(f"| {row.label} | n/a ({reason}) | | | | | | |")
            continue
        assert row.ttfe is not None
        ttfe = row.ttfe.ttfe_p50_ms
        added = ttfe - d_ttfe if d_ttfe is not None and row.key != "direct" else None
        ev1, evn = _events_per_s(row.ev1), _events_per_s(row.evn)
        print(
            f"| {row.label} | {_ms(ttfe)} | {_ms(added, signed=True)} "
            f"| {_num(ev1)} | {_share(ev1, d_ev1)} | {_num(evn)} | {_share(evn, d_evn)} "
            f"| {row.ttfe.events} |"
        )


def print_tables(rows: list[Row], plan: Plan, *, streaming: bool) -> None:
    by_key = {row.key: row for row in rows}
    direct, floor = by_key.get("direct"), by_key.get("floor")
    d50 = direct.c1.p50_ms if direct and direct.c1 else None
    d99 = direct.c1.p99_ms if direct and direct.c1 else None
    floor_rate = floor.c64.rate if floor and floor.c64 else None

    print(
        f"\n### Non-streaming, {len(COMPLETION)} B body: latency at c=1 ({plan.latency_s} s), "
        f"req/s at c=64 ({plan.rate_s} s)\n"
    )
    print(
        "| row | p50 c=1 | p99 c=1 | added p50 | added p99 | req/s c=64 | ratio vs floor |\n"
        "|---|---:|---:|---:|---:|---:|---:|"
    )
    for row in rows:
        if row.reason:
            print(f"| {row.label} | n/a ({_one_line(row.reason)}) | | | | | |")
            continue
        assert row.c1 is not None and row.c64 is not None
        added50 = row.c1.p50_ms - d50 if d50 is not None and row.key != "direct" else None
        added99 = row.c1.p99_ms - d99 if d99 is not None and row.key != "direct" else None
        print(
            f"| {row.label} | {_ms(row.c1.p50_ms)} | {_ms(row.c1.p99_ms)} "
            f"| {_ms(added50, signed=True)} | {_ms(added99, signed=True)} "
            f"| {_num(row.c64.rate)} | {_ratio(row.c64.rate, floor_rate)} |"
        )

    n = plan.stream_concurrency
    if streaming:
        _print_streaming(rows, plan, direct)

    notes = [f"{row.label}: {note}" for row in rows for note in row.notes]
    if notes:
        print("\nErrors seen by the load generator:")
        for note in notes:
            print(f"- {note}")

    gate = by_key.get("gate")
    if gate is None:
        return
    print("\n### Gate against its targets\n")
    print("| target | Gate | verdict |\n|---|---:|---|")
    if gate.reason:
        print(f"| all | n/a ({_one_line(gate.reason)}) | - |")
        return
    assert gate.c1 is not None and gate.c64 is not None
    share = gate.c64.rate / floor_rate if floor_rate else None
    verdict = "-" if share is None else ("met" if share >= TARGET_FLOOR_SHARE else "missed")
    print(
        f"| req/s c=64 >= {TARGET_FLOOR_SHARE:.0%} of the floor's "
        f"| {_share(gate.c64.rate, floor_rate)} | {verdict} |"
    )
    added = gate.c1.p50_ms - d50 if d50 is not None else None
    verdict = "-" if added is None else ("met" if added <= TARGET_ADDED_P50_MS else "missed")
    print(f"| added p50 <= {TARGET_ADDED_P50_MS} ms | {_ms(added, signed=True)} | {verdict} |")
    for label, result in (("c=1", gate.ev1), (f"c={n}", gate.evn)) if streaming else ():
        rate = _events_per_s(result)
        verdict = "-" if rate is None else ("met" if rate >= TARGET_EVENTS_PER_S else "missed")
        print(f"| events/s >= {TARGET_EVENTS_PER_S:,} ({label}) | {_num(rate)} | {verdict} |")


# -- the run ---------------------------------------------------------------------------------


def _deps_missing() -> list[str]:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    return missing


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).split("\n", 1)[0].split()
    return " ".join(first[:2])


def _nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextmanager
def _timed(label: str) -> Iterator[None]:
    began = time.monotonic()
    print(f"  {label} ...", file=sys.stderr, flush=True)
    yield
    print(f"  {label}: {time.monotonic() - began:.1f} s", file=sys.stderr, flush=True)


def run(
    only: set[str], plan: Plan, *, streaming: bool, profile: Path | None = None, profile_s: int = 8
) -> None:
    cores = Cores.detect()
    if cores.gen is not None:
        # The Python client and wrk (a child) run on the load generator's core.
        os.sched_setaffinity(0, {cores.gen})
    version = litellm_version() if "litellm" in only else None
    print("# Gateway overhead (bench/gateway.py)\n")
    print(
        f"- machine: {os.cpu_count()} cores, {platform.platform()}, Python {sys.version.split()[0]}"
    )
    print(f"- pinning: {cores.describe()}")
    print(f"- load average before the run: {_load()} (other work on the machine skews the rows)")
    print(
        f"- upstream, non-streaming: {_nginx_version()} answering every POST with the same "
        f"{len(COMPLETION)} B chat completion (`return 200`)"
    )
    print(
        f"- upstream, streaming: a raw trio server that sends each of the {EVENTS} events (and "
        "[DONE]) as its own HTTP/1.1 chunk in its own write, as an engine does; nginx can only "
        "send a static SSE body in one write, which proxies would relay as one chunk"
    )
    print(f"- load generator: {_wrk_version()} (one thread, kept-alive connections) for latency")
    print("  percentiles and rates; a blocking Python client for time to first event")
    litellm = version or ("not installed" if "litellm" in only else "not in this run")
    print(
        f"- LiteLLM: {litellm}; no API key on any row (LiteLLM started with "
        "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY); access logs off in every row "
        "(Gate's request log, which it keeps in state.db, stays on: that is part of Gate)"
    )

    rows: dict[str, Row] = {}
    reference: Row | None = None
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        procs = Processes(stack, cores, workdir)
        try:
            json_port, sse_port = start_upstreams(procs, core=cores.gen)
        except Unavailable as e:
            raise SystemExit(f"the upstreams did not start: {e}") from e
        starters: dict[str, Callable[[Processes], Target]] = {
            # The very upstreams the proxies use, where they run (the load generator's core).
            "direct": lambda p: Target(
                "direct",
                LABELS["direct"],
                Endpoint(json_port, CHAT, JSON_MODEL),
                Endpoint(sse_port, CHAT, SSE_MODEL),
            ),
            "nginx": lambda p: start_nginx_proxy(p, cores, json_port, sse_port),
            "floor": lambda p: start_floor(p, cores),
            "litellm": lambda p: start_litellm(p, cores, json_port, sse_port, version),
            "gate": lambda p: start_gate(p, cores, json_port, sse_port),
        }
        for round_ in range(plan.repeat):
            for key in ROWS:
                if key not in only:
                    continue
                # Each server runs only for its own row, so none idles on the proxy's core.
                suffix = f" (round {round_ + 1}/{plan.repeat})" if plan.repeat > 1 else ""
                with _timed(key + suffix), ExitStack() as row_stack:
                    row_procs = Processes(row_stack, cores, workdir)
                    try:
                        target = starters[key](row_procs)
                    except Unavailable as e:
                        row = Row(key, LABELS[key], reason=str(e))
                    else:
                        row = measure(target, plan, workdir, streaming=streaming)
                        if key == "direct" and streaming and target.json is not None:
                            burst = Target(
                                "burst",
                                "nginx, one write",
                                None,
                                Endpoint(target.json.port, "/burst" + CHAT, SSE_MODEL),
                            )
                            more = measure(burst, plan, workdir)
                            reference = best_of(reference, more) if reference else more
                rows[key] = best_of(rows[key], row) if key in rows else row
        profiled: list[str] = []
        if profile is not None:
            with _timed("gate under py-spy"), ExitStack() as row_stack:
                try:
                    target = start_gate(
                        Processes(row_stack, cores, workdir), cores, json_port, sse_port
                    )
                    profiled = profile_gate(target, profile, profile_s, workdir)
                except (Unavailable, RuntimeError, OSError, subprocess.SubprocessError) as e:
                    profiled = [f"\nNot profiled: {e}"]
    print(f"- load average after the run: {_load()}")
    if plan.repeat > 1:
        print(f"- each figure is the best of {plan.repeat} rounds")
    print_tables(list(rows.values()), plan, streaming=streaming)
    if reference is not None and reference.sse_reason:
        print(f"\nReference (nginx, one write) not measured: {reference.sse_reason}")
    elif reference is not None and reference.ttfe is not None:
        print(
            f"\nReference, not a row: nginx sending the {EVENTS} events as one static body gives "
            f"TTFE p50 {_ms(reference.ttfe.ttfe_p50_ms)}, "
            f"{_num(_events_per_s(reference.ev1))} events/s at c=1 and "
            f"{_num(_events_per_s(reference.evn))} at c={plan.stream_concurrency}."
        )
    for line in profiled:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test")
    parser.add_argument(
        "--only",
        default=",".join(ROWS),
        help=f"rows to run, comma-separated, from {','.join(ROWS)} (direct always runs: "
        "it is the baseline of the added-latency columns)",
    )
    parser.add_argument("--no-stream", action="store_true", help="skip the streaming table")
    parser.add_argument(
        "--repeat",
        type=int,
        help="rounds over all rows, keeping each figure's best (default 2, 1 with --quick)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="after the tables' runs, record Gate with py-spy under wrk at c=64 and print "
        "where its time goes (the raw file goes in DIR)",
    )
    parser.add_argument(
        "--profile-seconds", type=int, default=8, help="how long py-spy records (default 8)"
    )
    args = parser.parse_args()
    only = {key.strip() for key in args.only.split(",") if key.strip()}
    unknown = only - set(ROWS)
    if unknown:
        parser.error(f"unknown rows: {', '.join(sorted(unknown))} (choose from {', '.join(ROWS)})")
    only.add("direct")
    missing = _deps_missing()
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)}. Install them with: {DEPS}")
    plan = Plan.pick(quick=args.quick, repeat=max(1, args.repeat) if args.repeat else None)
    run(
        only,
        plan,
        streaming=not args.no_stream,
        profile=args.profile.resolve() if args.profile else None,
        profile_s=max(1, args.profile_seconds),
    )


if __name__ == "__main__":
    main()
