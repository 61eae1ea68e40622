// The logs page: the node's recent log records (logs.tail) and new ones as `log` events
// arrive, newest first, filtered by level and text, with a pause. The rows kept are capped so
// a chatty node cannot grow the page.
import { Component } from "preact";
import { Card, Empty, ErrorText, Loading, call, html, live, stylesheet, useEffect, useRef,
         useState } from "../ui/kit.js";

// kit.stylesheet resolves a relative href against kit.js (ui/), so pass this module's URL.
stylesheet(new URL("./logs.css", import.meta.url).href);

const LEVELS = ["debug", "info", "warning", "error", "critical"];
const RANK = Object.fromEntries(LEVELS.map((l, i) => [l, i]));
const KEEP = 1000;
const BASE = new Set(["ts", "level", "logger", "msg", "exc", "seq"]);

let nextKey = 1;
const keyed = (entry) => ({ ...entry, key: entry.seq ?? `k${nextKey++}` });

function time(ts) {
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? ts : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function extras(entry) {
  return Object.entries(entry).filter(([k]) => !BASE.has(k) && k !== "key");
}

// A line never changes once shown: skip it when the list redraws.
class Line extends Component {
  shouldComponentUpdate(next) { return next.entry !== this.props.entry; }
  render({ entry }) { return LineBody(entry); }
}

function LineBody(entry) {
  const more = extras(entry);
  return html`<li class=${"log-line level-" + entry.level}>
    <time datetime=${entry.ts} title=${entry.ts}>${time(entry.ts)}</time>
    <span class="level">${entry.level}</span>
    <span class="logger" title=${entry.logger}>${entry.logger.replace(/^gate_runner\./, "")}</span>
    <span class="msg">${entry.msg}${more.length > 0 && html` <span class="extras">${more.map(([k, v]) => html`<span>${k}=${String(v)}</span> `)}</span>`}</span>
    ${entry.exc && html`<pre class="exc">${entry.exc}</pre>`}
  </li>`;
}

export default function Page() {
  const [level, setLevel] = useState("info");
  const [text, setText] = useState("");
  const [lines, setLines] = useState(null);
  const [error, setError] = useState(null);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState(0);
  const state = useRef({ paused: false, held: [] });
  state.current.paused = paused;

  useEffect(() => {
    let alive = true;
    let pending = [];
    let timer = null;
    const load = () => call("logs.tail", { limit: KEEP, level }).then(
      (list) => { if (!alive) return; pending = []; setLines(list.map(keyed).reverse()); setError(null); },
      (e) => alive && setError(e));
    // Many records a second under load: one render for each batch.
    const flush = () => {
      timer = null;
      const fresh = pending.reverse();
      pending = [];
      setLines((old) => {
        const seen = new Set((old ?? []).map((l) => l.key));
        return [...fresh.filter((l) => !seen.has(l.key)), ...(old ?? [])].slice(0, KEEP);
      });
    };
    const onLog = (entry, event) => {
      if (RANK[entry.level] < RANK[level]) return;
      const row = keyed({ ...entry, seq: event?.seq ?? entry.seq });
      if (state.current.paused) {
        state.current.held.push(row);
        if (state.current.held.length > KEEP) state.current.held.shift();
        setHeld(state.current.held.length);
        return;
      }
      pending.push(row);
      if (pending.length > KEEP) pending.shift();
      if (timer === null) timer = setTimeout(flush, 200);
    };
    load();
    const offs = [live.on("connected", load), live.on("log", onLog)];
    return () => { alive = false; clearTimeout(timer); offs.forEach((off) => off()); };
  }, [level]);

  const togglePause = () => {
    if (paused) {
      const held = state.current.held.reverse();
      state.current.held = [];
      setHeld(0);
      setLines((old) => [...held, ...(old ?? [])].slice(0, KEEP));
    }
    setPaused(!paused);
  };

  const needle = text.trim().toLowerCase();
  const shown = (lines ?? []).filter((l) => !needle
    || l.msg.toLowerCase().includes(needle) || l.logger.toLowerCase().includes(needle));

  const actions = html`<button type="button" class=${paused ? "primary" : ""} aria-pressed=${paused}
      onClick=${togglePause}>${paused ? `Resume${held ? ` (${held} new)` : ""}` : "Pause"}</button>`;
  return html`<${Card} wide title="Node log" actions=${actions}>
    <div class="row log-filters">
      <div><label for="log-level">Least level</label>
        <select id="log-level" value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>
          ${LEVELS.map((l) => html`<option value=${l}>${l}</option>`)}
        </select></div>
      <div class="grow"><label for="log-search">Search</label>
        <input id="log-search" type="search" value=${text} placeholder="words in the message or logger"
          onInput=${(e) => setText(e.currentTarget.value)} /></div>
    </div>
    <p class="muted log-status" role="status">
      ${paused ? `Paused: ${held} new line${held === 1 ? "" : "s"} held. Resume to show them.`
               : "Live: new lines appear at the top."}
      ${level === "debug" ? " Live lines start at info; debug lines show only in what the node kept." : ""}
    </p>
    <${ErrorText} error=${error} />
    ${lines === null && !error ? html`<${Loading} what="Loading the log" />`
      : !shown.length ? html`<${Empty}>${needle ? "No line matches that search." : `No ${level} lines or above yet: they show up here as the node writes them.`}<//>`
      : html`<ol class="log" aria-label="Log lines, newest first">${shown.map((l) => html`<${Line} key=${l.key} entry=${l} />`)}</ol>`}
  <//>`;
}
