"""The web UI's dashboard, in Debian's Chromium: time to interactive and bytes shipped,
against the same page served as static files by hypercorn in the same run, and the page's
CPU and memory while the node serves 200 requests/s (each one a live `request.completed`
event on the dashboard) for five minutes.

    python bench/webui.py              # about 6 minutes
    python bench/webui.py --quick      # 30 s of load, 5 page loads: a smoke run
    python bench/webui.py --minutes 1  # a shorter load phase

Needs nginx (the upstream; scripts/bench-deps.sh), chromium and playwright (make test-deps).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for entry in (str(ROOT), str(BENCH)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from _gateway_servers import JSON_MODEL, request_body  # noqa: E402
from _loadgen import Connection  # noqa: E402
from gateway import Cores, Processes, start_upstreams  # noqa: E402

from tests.rig import GateNode, free_port  # noqa: E402
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

STATIC = ROOT / "gate_runner" / "components" / "control" / "static"
RATE = 200  # requests per second during the load phase


# -- the static baseline: the same files from hypercorn on trio, no Gate in front ------------


def _static_server(port: int, ready: threading.Event) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def index(request: Any) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app = Starlette(
        routes=[Route("/", index), Mount("/ui", StaticFiles(directory=STATIC), name="ui")]
    )
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(serve, app, config))
            ready.set()

    trio.run(main)


# -- measuring one page load ---------------------------------------------------------------


@dataclass
class Load:
    interactive_ms: float  # navigation start to the dashboard drawn (gate) / shell drawn (static)
    fcp_ms: float
    transferred: int  # bytes over the wire, headers excluded
    decoded: int  # bytes after decompression
    requests: int


_READY_GATE = (
    "() => !!document.querySelector('.conn.open') && !!document.querySelector('main#main .card')"
)
_READY_STATIC = "() => !!document.querySelector('.top')"

_TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  const all = [nav, ...performance.getEntriesByType('resource')];
  return {
    now: performance.now(),
    fcp: fcp ? fcp.startTime : NaN,
    transferred: all.reduce((n, e) => n + (e.encodedBodySize || 0), 0),
    decoded: all.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
    requests: all.length,
  };
}"""


def measure_load(browser: Any, url: str, ready: str, state: dict[str, Any] | None = None) -> Load:
    """One load in a fresh context (cold cache), with ``state``'s session cookie if given."""
    context = browser.new_context(storage_state=state, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(ready, timeout=15_000)
        t = page.evaluate(_TIMINGS)
        return Load(t["now"], t["fcp"], t["transferred"], t["decoded"], t["requests"])
    finally:
        context.close()


def login_state(browser: Any, node: GateNode) -> dict[str, Any]:
    """A session cookie from one login, reused by each measured load (a link works once)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(node.rpc("node.loginLink")["url"])
    page.wait_for_selector(".conn.open", timeout=15_000)
    state: dict[str, Any] = context.storage_state()
    context.close()
    return state


# -- the load phase ----------------------------------------------------------------------------


def drive(port: int, rate: int, seconds: float, stop: threading.Event) -> int:
    """Non-streamed chat completions at ``rate``/s on one kept-alive connection; the count sent."""
    body = request_body(JSON_MODEL, stream=False)
    conn = Connection(port)
    sent = 0
    began = time.perf_counter()
    try:
        while not stop.is_set() and time.perf_counter() - began < seconds:
            due = began + sent / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.request("POST", "/v1/chat/completions", body)
            sent += 1
    finally:
        conn.close()
    return sent


@dataclass
class Sample:
    at_s: float
    cpu_s: float  # the page's main-thread task time so far (CDP Performance.TaskDuration)
    heap_mb: float  # JS heap in use after a forced garbage collection


def sample(cdp: Any, began: float) -> Sample:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return Sample(
        time.perf_counter() - began, metrics["TaskDuration"], metrics["JSHeapUsedSize"] / 1e6
    )


# -- output ----------------------------------------------------------------------------------


def _median(loads: list[Load], pick: Callable[[Load], float]) -> float:
    return statistics.median(pick(x) for x in loads)


def report(gate: list[Load], static: list[Load], samples: list[Sample], sent: int) -> None:
    print("### Time to interactive and bytes shipped, median of the loads\n")
    print("| page | interactive | first paint | bytes (wire) | bytes (decoded) | requests |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = (("static files from hypercorn (baseline)", static), ("Gate's dashboard", gate))
    for name, loads in rows:
        print(
            f"| {name} | {_median(loads, lambda x: x.interactive_ms):.0f} ms"
            f" | {_median(loads, lambda x: x.fcp_ms):.0f} ms"
            f" | {_median(loads, lambda x: x.transferred):,.0f}"
            f" | {_median(loads, lambda x: x.decoded):,.0f}"
            f" | {_median(loads, lambda x: x.requests):.0f} |"
        )
    ratio = _median(gate, lambda x: x.interactive_ms) / _median(static, lambda x: x.interactive_ms)
    print(f"\nGate's time to interactive is {ratio:.2f}x the static page's.\n")
    if len(samples) < 2:
        return
    span = samples[-1].at_s - samples[0].at_s
    print(f"### The dashboard under {RATE} requests/s ({sent:,} requests in {span:.0f} s)\n")
    print("| at | page CPU (share of one core) | JS heap after GC |")
    print("|---:|---:|---:|")
    for before, now in zip(samples, samples[1:], strict=False):
        share = (now.cpu_s - before.cpu_s) / max(now.at_s - before.at_s, 1e-9)
        print(f"| {now.at_s:.0f} s | {share:.1%} | {now.heap_mb:.1f} MB |")
    first, last = samples[1].heap_mb, samples[-1].heap_mb
    print(
        f"\nHeap from the first to the last sample: {first:.1f} MB -> {last:.1f} MB "
        f"({(last - first) / first:+.1%})."
    )


# -- main ------------------------------------------------------------------------------------


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--loads", type=int, default=15, help="page loads per page")
    args = parser.parse_args()
    seconds = 30.0 if args.quick else args.minutes * 60
    loads = 5 if args.quick else args.loads

    with chromium() as browser, ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gate-webui-")))
        procs = Processes(stack, Cores.detect(), workdir)
        json_port, _ = start_upstreams(procs, core=None)
        (workdir / "node").mkdir()
        node = GateNode(
            workdir / "node",
            extra=(
                "    static:\n"
                f"      - {{name: fast, kind: openai, url: 'http://127.0.0.1:{json_port}/v1'}}\n"
            ),
        )
        node.start()
        stack.callback(node.stop)

        static_port = free_port()
        ready = threading.Event()
        threading.Thread(target=_static_server, args=(static_port, ready), daemon=True).start()
        ready.wait(10)

        state = login_state(browser, node)
        gate_url = f"http://127.0.0.1:{node.control_port}/#/dashboard"
        static_url = f"http://127.0.0.1:{static_port}/"
        gate_loads: list[Load] = []
        static_loads: list[Load] = []
        session = browser.new_context(storage_state=state)
        stack.callback(session.close)
        for _ in range(loads):  # interleaved, so that noise from elsewhere hits both
            static_loads.append(measure_load(browser, static_url, _READY_STATIC))
            gate_loads.append(measure_load(browser, gate_url, _READY_GATE, state))

        page = session.new_page()
        page.goto(gate_url)
        page.wait_for_function(_READY_GATE, timeout=15_000)
        cdp = session.new_cdp_session(page)
        cdp.send("Performance.enable")
        stop = threading.Event()
        result: list[int] = []
        driver = threading.Thread(
            target=lambda: result.append(drive(node.api_port, RATE, seconds, stop)), daemon=True
        )
        began = time.perf_counter()
        samples = [sample(cdp, began)]
        driver.start()
        interval = max(seconds / 10, 3.0)
        while driver.is_alive():
            driver.join(interval)
            samples.append(sample(cdp, began))
        report(gate_loads, static_loads, samples, result[0] if result else 0)


if __name__ == "__main__":
    main()
