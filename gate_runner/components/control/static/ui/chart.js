// The dashboard's live traffic: a fixed-size ring of one-second buckets fed by
// `request.completed` events (requests, tokens, and a latency histogram per second), drawn by
// uPlot. Memory does not grow with traffic: hours at 200 requests/s use the same arrays.
import uPlot from "uplot";
import { html, useEffect, useRef, useState } from "./kit.js";

// Latency bins grow by 2^(1/4) (19 %) from 0.5 ms: 72 of them reach past 2 minutes, and a
// percentile read from them is within one bin's width of the exact one.
const BINS = 72;
const BASE_MS = 0.5;
const STEP = Math.SQRT2 ** 0.5;
const LOG_STEP = Math.log(STEP);

function binOf(latencyMs) {
  if (!(latencyMs > BASE_MS)) return 0;
  return Math.min(BINS - 1, Math.floor(Math.log(latencyMs / BASE_MS) / LOG_STEP));
}

// A bin's representative latency: its geometric middle.
function binValue(bin) {
  return BASE_MS * STEP ** (bin + 0.5);
}

function percentile(hist, offset, total, p) {
  if (!total) return null;
  const rank = Math.ceil(total * p);
  let seen = 0;
  for (let b = 0; b < BINS; b++) {
    seen += hist[offset + b];
    if (seen >= rank) return binValue(b);
  }
  return binValue(BINS - 1);
}

export class Traffic {
  constructor(seconds = 300) {
    this.seconds = seconds;
    this.second = new Float64Array(seconds).fill(-1); // which second each slot holds
    this.count = new Uint32Array(seconds);
    this.tokens = new Float64Array(seconds);
    this.hist = new Uint32Array(seconds * BINS);
    this.total = 0; // since the page loaded, for a test and for the summary
  }

  slot(second) {
    const i = second % this.seconds;
    if (this.second[i] !== second) {
      this.second[i] = second;
      this.count[i] = 0;
      this.tokens[i] = 0;
      this.hist.fill(0, i * BINS, (i + 1) * BINS);
    }
    return i;
  }

  // One finished request (a RequestRecord as requests.get returns it), counted at `now`.
  add(record, now = Date.now() / 1000) {
    const i = this.slot(Math.floor(now));
    this.count[i] += 1;
    this.tokens[i] += record.completionTokens || 0;
    this.hist[i * BINS + binOf(record.latencyMs)] += 1;
    this.total += 1;
  }

  // The window up to `now`, oldest first, as uPlot's columns, and its totals.
  series(now = Date.now() / 1000) {
    const end = Math.floor(now);
    const n = this.seconds;
    const xs = new Array(n), rps = new Array(n), tps = new Array(n);
    const p50 = new Array(n), p99 = new Array(n);
    const merged = new Uint32Array(BINS);
    let requests = 0, tokens = 0;
    for (let k = 0; k < n; k++) {
      const second = end - n + 1 + k;
      const i = ((second % n) + n) % n;
      xs[k] = second;
      if (this.second[i] === second && this.count[i]) {
        const c = this.count[i];
        rps[k] = c;
        tps[k] = this.tokens[i];
        p50[k] = percentile(this.hist, i * BINS, c, 0.5);
        p99[k] = percentile(this.hist, i * BINS, c, 0.99);
        requests += c;
        tokens += this.tokens[i];
        for (let b = 0; b < BINS; b++) merged[b] += this.hist[i * BINS + b];
      } else {
        rps[k] = 0;
        tps[k] = 0;
        p50[k] = null;
        p99[k] = null;
      }
    }
    const summary = {
      requests,
      tokens,
      p50: percentile(merged, 0, requests, 0.5),
      p99: percentile(merged, 0, requests, 0.99),
    };
    return { throughput: [xs, rps, tps], latency: [xs, p50, p99], summary };
  }
}

function themeColours() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return { fg: v("--fg"), muted: v("--muted"), border: v("--border"), accent: v("--accent"),
           ok: v("--ok"), warn: v("--warn"), bad: v("--bad") };
}

const Y_AXIS = 64; // px: both charts' value axes, so their time axes line up

const fixed = (digits) => (u, value) => (value == null ? "–" : value.toFixed(digits));

function axis(c, label, extra = {}) {
  return { label, stroke: c.muted, grid: { stroke: c.border, width: 1 },
           ticks: { stroke: c.border, width: 1 }, labelFont: "12px system-ui, sans-serif",
           font: "12px system-ui, sans-serif", ...extra };
}

function throughputOptions(c, width) {
  return {
    width, height: 170,
    scales: { x: { time: true }, req: { range: (u, lo, hi) => [0, Math.max(1, hi)] },
              tok: { range: (u, lo, hi) => [0, Math.max(1, hi)] } },
    axes: [axis(c, null), axis(c, "requests/s", { scale: "req", size: Y_AXIS }),
           axis(c, "tokens/s", { scale: "tok", side: 1, size: Y_AXIS, grid: { show: false } })],
    series: [{}, { label: "Requests/s", scale: "req", stroke: c.accent, width: 2, value: fixed(0) },
             { label: "Tokens/s", scale: "tok", stroke: c.ok, width: 2, dash: [6, 3], value: fixed(0) }],
    cursor: { drag: { x: false, y: false } },
  };
}

// Latency has gaps (seconds with no request), so a lone second would draw nothing as a line:
// mark every point.
const dots = (colour) => ({ show: true, size: 5, stroke: colour, fill: colour });

function latencyOptions(c, width) {
  return {
    width, height: 170,
    scales: { x: { time: true }, ms: { range: (u, lo, hi) => [0, Math.max(10, hi ?? 10)] } },
    // An empty right axis as wide as the tokens one, so both charts' time axes line up.
    axes: [axis(c, null), axis(c, "latency (ms)", { scale: "ms", size: Y_AXIS }),
           { scale: "ms", side: 1, size: Y_AXIS, values: () => [], grid: { show: false }, ticks: { show: false } }],
    series: [{}, { label: "p50", scale: "ms", stroke: c.accent, width: 2, value: fixed(1), points: dots(c.accent) },
             { label: "p99", scale: "ms", stroke: c.bad, width: 2, dash: [6, 3], value: fixed(1), points: dots(c.bad) }],
    cursor: { drag: { x: false, y: false } },
  };
}

function fmtMs(v) {
  if (v == null) return "–";
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function summaryText(s, minutes) {
  return html`Last ${minutes} min: <strong>${plural(s.requests, "request")}</strong>, ${" "}
    <strong>${plural(Math.round(s.tokens), "token")}</strong> generated, latency p50 ${" "}
    <strong>${fmtMs(s.p50)}</strong>, p99 <strong>${fmtMs(s.p99)}</strong>.`;
}

// The two charts (throughput, latency) of `traffic`, redrawn once a second while the tab is
// visible (a redraw, not a poll: the data only ever comes from events), and again on a theme
// change (the colours are the theme's CSS variables).
export function TrafficCharts({ traffic }) {
  const box = useRef(null);
  const [summary, setSummary] = useState(() => traffic.series().summary);
  useEffect(() => {
    const el = box.current;
    let charts = [];
    const width = () => Math.max(240, el.clientWidth);
    const draw = () => {
      charts.forEach((u) => u.destroy());
      const c = themeColours();
      const data = traffic.series();
      const [a, b] = el.querySelectorAll(".chart-slot");
      charts = [new uPlot(throughputOptions(c, width()), data.throughput, a),
                new uPlot(latencyOptions(c, width()), data.latency, b)];
    };
    const tick = () => {
      if (document.hidden) return;
      const data = traffic.series();
      charts[0].setData(data.throughput);
      charts[1].setData(data.latency);
      setSummary(data.summary);
      el.dataset.total = String(traffic.total);
    };
    draw();
    tick();
    const timer = setInterval(tick, 1000);
    const scheme = matchMedia("(prefers-color-scheme: dark)");
    scheme.addEventListener("change", draw);
    const resize = new ResizeObserver(() => charts.forEach((u) => u.setSize({ width: width(), height: 170 })));
    resize.observe(el);
    return () => {
      clearInterval(timer);
      scheme.removeEventListener("change", draw);
      resize.disconnect();
      charts.forEach((u) => u.destroy());
    };
  }, [traffic]);
  const minutes = Math.round(traffic.seconds / 60);
  return html`<figure class="traffic" ref=${box} data-total="0">
    <figcaption class="traffic-summary" aria-live="off">
      ${summary.requests ? summaryText(summary, minutes)
        : html`No requests in the last ${minutes} min. Send one from <a href="#/try">Try it</a> or any
            OpenAI client, and it shows here as it finishes.`}
    </figcaption>
    <div class="chart-slot" role="img" aria-label=${`Requests and tokens per second, last ${minutes} minutes`}></div>
    <div class="chart-slot" role="img" aria-label=${`Latency p50 and p99, last ${minutes} minutes`}></div>
  </figure>`;
}
