"""Where Gate's CPU per request goes, by parts: the server process's CPU time (user + system,
from /proc) per request under wrk at c=64, for servers that add one thing at a time, each
pinned to one core like bench/gateway.py's rows. Prints one markdown table of ratios.

    python bench/gateway_parts.py               # 3 rounds, about 4 minutes
    python bench/gateway_parts.py --rounds 1    # about a minute

Rows, against the same nginx upstream:
- floor: the empty hypercorn-trio app of bench/gateway.py;
- proxy: 30 lines that forward each request to the upstream on a kept-alive socket;
- proxy + Gate's headers: the same answering with Gate's four extra response headers;
- proxy + a cancel scope: the same with one trio cancel scope (a read timeout) per request;
- Gate's API alone: Gate's ApiApp, router, request log and metrics, served by hypercorn
  without the rest of the node;
- Gate: the whole node (`gate up`), as bench/gateway.py measures it.

CPU per request does not depend on how fast the load generator is, so it separates the
parts better than req/s; the medians of the rounds are shown, with every round's figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway import (  # noqa: E402
    CHAT,
    JSON_MODEL,
    SERVERS,
    Cores,
    Endpoint,
    Processes,
    Target,
    Unavailable,
    _url,
    free_port,
    request_body,
    run_wrk,
    start_gate,
    start_upstreams,
    wait_http,
)

ROWS = {
    "floor": "hypercorn-trio, empty ASGI app (floor)",
    "proxy": "minimal proxy on the same stack",
    "proxy-headers": "minimal proxy + Gate's 4 response headers",
    "proxy-scope": "minimal proxy + 1 cancel scope per request",
    "api": "Gate's API alone (no node around it)",
    "gate": "Gate (the whole node)",
}
_SERVER_ARGS = {
    "floor": ["floor"],
    "proxy": ["proxy"],
    "proxy-headers": ["proxy", "headers"],
    "proxy-scope": ["proxy", "scope"],
    "api": ["api"],
}


@dataclass
class Figures:
    cpu_us: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, every thread, in clock ticks


def _start(key: str, procs: Processes, cores: Cores, upstream: int, sse: int) -> Target:
    if key == "gate":
        return start_gate(procs, cores, upstream, sse)
    port = free_port()
    args = _SERVER_ARGS[key]
    cmd = [sys.executable, str(SERVERS), args[0], str(port)]
    if key != "floor":
        cmd += [str(upstream), *args[1:]]
    proc, log = procs.spawn(key, cmd, core=cores.proxy)
    wait_http(port, "/v1/models", proc=proc, log=log, timeout=30, what=ROWS[key])
    return Target(key, ROWS[key], Endpoint(port, CHAT, JSON_MODEL), None, pid=proc.pid)


def measure(target: Target, seconds: int, workdir: Path) -> tuple[float, float]:
    """(CPU µs per request, req/s) at c=64, after a second of warm-up."""
    assert target.json is not None and target.pid is not None
    url = _url(target.json)
    body = request_body(target.json.model, stream=False)
    run_wrk(url, body, connections=64, seconds=1, workdir=workdir)
    before = _cpu_ticks(target.pid)
    result = run_wrk(url, body, connections=64, seconds=seconds, workdir=workdir)
    ticks = _cpu_ticks(target.pid) - before
    requests = result.rate * seconds
    return ticks / os.sysconf("SC_CLK_TCK") / requests * 1e6, result.rate


def run(rounds: int, seconds: int, only: list[str]) -> None:
    cores = Cores.detect()
    if cores.gen is not None:
        os.sched_setaffinity(0, {cores.gen})
    figures = {key: Figures() for key in only}
    with tempfile.TemporaryDirectory(prefix="gate-parts-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        procs = Processes(stack, cores, workdir)
        upstream, sse = start_upstreams(procs, core=cores.gen)
        for round_ in range(rounds):
            for key in only:  # interleaved, so that a noisy minute hits every row alike
                began = time.monotonic()
                with ExitStack() as row_stack:
                    target = _start(key, Processes(row_stack, cores, workdir), cores, upstream, sse)
                    cpu_us, rate = measure(target, seconds, workdir)
                figures[key].cpu_us.append(cpu_us)
                figures[key].rates.append(rate)
                print(
                    f"  {key} (round {round_ + 1}/{rounds}): {cpu_us:.0f} us, "
                    f"{time.monotonic() - began:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    print_table(figures, rounds, seconds, cores)


def print_table(figures: dict[str, Figures], rounds: int, seconds: int, cores: Cores) -> None:
    print("# Gate's CPU per request, by parts (bench/gateway_parts.py)\n")
    print(f"- pinning: {cores.describe()}")
    print(f"- wrk at c=64 for {seconds} s after 1 s of warm-up; median of {rounds} round(s)\n")
    floor = figures.get("floor")
    base = statistics.median(floor.cpu_us) if floor else None
    print("| row | CPU per request | vs floor | req/s | every round (µs) |")
    print("|---|---:|---:|---:|---|")
    for key, fig in figures.items():
        cpu = statistics.median(fig.cpu_us)
        ratio = f"{cpu / base:.2f}x" if base else "-"
        rounds_text = ", ".join(f"{c:.0f}" for c in fig.cpu_us)
        print(
            f"| {ROWS[key]} | {cpu:.0f} µs | {ratio} | {statistics.median(fig.rates):,.0f} "
            f"| {rounds_text} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the rows (default 3)")
    parser.add_argument("--seconds", type=int, default=5, help="wrk time per row (default 5)")
    parser.add_argument("--only", default=",".join(ROWS), help="rows, comma-separated")
    args = parser.parse_args()
    only = [key for key in args.only.split(",") if key]
    unknown = [key for key in only if key not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    try:
        run(max(1, args.rounds), max(1, args.seconds), only)
    except Unavailable as e:
        raise SystemExit(f"cannot run: {e}") from e


if __name__ == "__main__":
    main()
