// The requests page: the request log (requests.list) as a filterable table that grows live
// from `request.completed` events, pages back with `before`, and a detail view of one request
// at #/requests?id=<id> (requests.get), every field in words.
import { Component } from "preact";
import { Card, CopyButton, Empty, ErrorText, Loading, ago, call, html, live, ms, stylesheet, useEffect,
         useRef, useState } from "../ui/kit.js";

// kit.stylesheet resolves a relative href against kit.js (ui/), so pass this module's URL.
stylesheet(new URL("./requests.css", import.meta.url).href);

const STATUS_TEXT = {
  200: "OK", 201: "Created", 204: "No content", 400: "Bad request", 401: "Not authenticated",
  403: "Forbidden", 404: "Not found", 408: "Timed out waiting for the client",
  413: "Too large", 422: "Invalid", 429: "Too many requests", 499: "Client went away",
  500: "Internal error", 501: "Not implemented", 502: "The engine failed",
  503: "No engine available", 504: "The engine timed out",
};

export function statusText(status) {
  return STATUS_TEXT[status] ?? (status < 400 ? "OK" : status < 500 ? "Refused" : "Failed");
}

export function StatusBadge({ status }) {
  const kind = status < 400 ? "ok" : status < 500 ? "warn" : "bad";
  return html`<span class=${"status " + kind}>${status} <span class="status-text">${statusText(status)}</span></span>`;
}

export function tokens(r) {
  if (r.promptTokens == null && r.completionTokens == null) return "–";
  return `${r.promptTokens ?? "?"} → ${r.completionTokens ?? "?"}`;
}

export function clock(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function whereFrom(source) {
  return source.startsWith("peer:") ? `peer ${source.slice(5)}` : source;
}

export function requestLink(id) {
  return `#/requests?id=${encodeURIComponent(id)}`;
}

const PAGE = 50;
// Rows the live table keeps: at 200 requests/s the newest push the oldest out, and "Older"
// pages back from the oldest kept.
const KEEP = 200;

function hashQuery() {
  const hash = location.hash;
  const q = hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : hash.slice(q + 1));
}

function matches(record, filter) {
  return (!filter.model || record.model === filter.model)
    && (!filter.status || record.status === Number(filter.status));
}

function params(filter, before) {
  const p = { limit: PAGE };
  if (filter.model) p.model = filter.model;
  if (filter.status) p.status = Number(filter.status);
  if (before !== undefined) p.before = before;
  return p;
}

function Filters({ filter, setFilter, models }) {
  const [model, setModel] = useState(filter.model);
  const [status, setStatus] = useState(filter.status);
  const submit = (e) => { e.preventDefault(); setFilter({ model: model.trim(), status }); };
  const clear = () => { setModel(""); setStatus(""); setFilter({ model: "", status: "" }); };
  return html`<form class="filters row" onSubmit=${submit} aria-label="Filter requests">
    <div><label for="rq-model">Model</label>
      <input id="rq-model" list="rq-models" value=${model} placeholder="any model"
        onInput=${(e) => setModel(e.currentTarget.value)} autocomplete="off" />
      <datalist id="rq-models">${models.map((m) => html`<option value=${m} />`)}</datalist></div>
    <div><label for="rq-status">Status</label>
      <select id="rq-status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
        <option value="">any status</option>
        ${Object.keys(STATUS_TEXT).map((code) => html`<option value=${code}>${code} ${STATUS_TEXT[code]}</option>`)}
      </select></div>
    <div class="filter-actions"><button type="submit" class="primary">Filter</button>
      ${(filter.model || filter.status) && html`<button type="button" onClick=${clear}>Clear</button>`}</div>
  </form>`;
}

// A row redraws only when its record changes: under load, new rows arrive several times a
// second and the hundreds already shown are left alone (preact has no memo without compat).
class Row extends Component {
  shouldComponentUpdate(next) { return next.r !== this.props.r; }
  render({ r }) {
    return html`<tr>
      <td data-label="Time"><a href=${requestLink(r.id)} aria-label=${`Request at ${clock(r.startedAt)}, ${r.model ?? r.path}: details`}>${clock(r.startedAt)}</a></td>
      <td data-label="Model" class="model">${r.model ?? html`<span class="muted">${r.path}</span>`}
        ${r.targetNode && html` <span class="muted">@${r.targetNode}</span>`}</td>
      <td data-label="Status"><${StatusBadge} status=${r.status} /></td>
      <td data-label="Latency">${ms(r.latencyMs)}</td>
      <td data-label="Tokens in → out">${tokens(r)}</td>
      <td data-label="From">${whereFrom(r.source)}</td>
    </tr>`;
  }
}

export function RequestTable({ rows, empty, caption }) {
  if (!rows.length) return html`<${Empty}>${empty}<//>`;
  return html`<div class="table-wrap"><table class="requests">
    <caption class="visually-hidden">${caption}</caption>
    <thead><tr><th scope="col">Time</th><th scope="col">Model</th><th scope="col">Status</th>
      <th scope="col">Latency</th><th scope="col">Tokens in → out</th><th scope="col">From</th></tr></thead>
    <tbody>${rows.map((r) => html`<${Row} key=${r.id} r=${r} />`)}</tbody>
  </table></div>`;
}

function List() {
  const [filter, setFilter] = useState({ model: "", status: "" });
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const [more, setMore] = useState(false);
  const [loadingMore, setLoadingMore] = useState(false);
  const [models, setModels] = useState([]);
  const filterRef = useRef(filter);
  filterRef.current = filter;

  useEffect(() => {
    let alive = true;
    let pending = [];
    let timer = null;
    const load = () => call("requests.list", params(filter)).then(
      // Events still pending stay: one that arrived while this list was read may be newer
      // than it (the flush skips the ids the list already has).
      (list) => { if (!alive) return; setRows(list); setMore(list.length === PAGE); setError(null); },
      (e) => alive && setError(e),
    );
    // Events come in bursts (hundreds a second under load): batch them into one render.
    const flush = () => {
      timer = null;
      const fresh = pending.reverse();
      pending = [];
      setRows((old) => {
        const seen = new Set((old ?? []).map((r) => r.id));
        // Rows paged in with "Show older" stay: the table keeps its length, not more.
        const keep = Math.max(KEEP, old?.length ?? 0);
        return [...fresh.filter((r) => !seen.has(r.id)), ...(old ?? [])].slice(0, keep);
      });
    };
    const onRequest = (record) => {
      if (!matches(record, filterRef.current)) return;
      pending.push(record);
      if (timer === null) timer = setTimeout(flush, 250);
    };
    load();
    const offs = [live.on("connected", load), live.on("request.completed", onRequest)];
    return () => { alive = false; clearTimeout(timer); offs.forEach((off) => off()); };
  }, [filter.model, filter.status]);

  useEffect(() => {
    call("providers.list").then((ps) => setModels([...new Set(ps.flatMap((p) => p.models))].sort()), () => {});
  }, []);

  const older = () => {
    const last = rows[rows.length - 1];
    setLoadingMore(true);
    call("requests.list", params(filter, last.startedAt)).then(
      (list) => {
        setRows((old) => { const seen = new Set(old.map((r) => r.id)); return [...old, ...list.filter((r) => !seen.has(r.id))]; });
        setMore(list.length === PAGE);
        setLoadingMore(false);
      },
      (e) => { setError(e); setLoadingMore(false); },
    );
  };

  const filtered = filter.model || filter.status;
  return html`<${Card} wide title="Request log">
    <${Filters} filter=${filter} setFilter=${setFilter} models=${models} />
    <${ErrorText} error=${error} />
    ${rows === null ? html`<${Loading} what="Loading requests" />` : html`
      <p class="muted count">${rows.length ? `${rows.length} shown, newest first; new ones appear as they finish.` : ""}</p>
      <${RequestTable} rows=${rows} caption="Requests, newest first"
        empty=${filtered ? "No request matches this filter yet. New ones that match show up here as they finish."
                         : html`No requests yet. Send one from <a href="#/try">Try it</a> or any OpenAI client pointed at this node, and it shows up here as it finishes.`} />
      ${more && html`<p><button type="button" onClick=${older} disabled=${loadingMore}>${loadingMore ? "Loading…" : "Show older requests"}</button></p>`}`}
  <//>`;
}

function Field({ term, children }) {
  return html`<dt>${term}</dt><dd>${children}</dd>`;
}

function attempts(n) {
  if (n === 0) return "0 (not sent to any engine)";
  if (n === 1) return "1 (no retry)";
  return `${n} (${n - 1} ${n === 2 ? "retry" : "retries"} on another engine or peer)`;
}

function Detail({ id }) {
  const [record, setRecord] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setRecord(null); setError(null);
    call("requests.get", { id }).then(setRecord, setError);
  }, [id]);
  const back = html`<p><a href="#/requests">← All requests</a></p>`;
  if (error) return html`${back}<${ErrorText} error=${error} />`;
  if (!record) return html`${back}<${Loading} what="Loading the request" />`;
  const r = record;
  const started = new Date(r.startedAt * 1000);
  return html`${back}<${Card} wide title=${`${r.method} ${r.path}`}>
    <dl class="kv request-detail">
      <${Field} term="Request id"><span class="id-row"><code>${r.id}</code> <${CopyButton} text=${r.id} label="Copy request id" /></span><//>
      <${Field} term="Started">${started.toLocaleString()} (${ago(r.startedAt)})<//>
      <${Field} term="Status"><${StatusBadge} status=${r.status} /><//>
      ${r.error && html`<${Field} term="Error"><span class="error-inline">${r.error}</span><//>`}
      <${Field} term="Model">${r.model ?? "none named"}<//>
      <${Field} term="Served by">${r.targetNode ? `peer ${r.targetNode}` : "this node"}${r.provider ? `, provider ${r.provider}` : ""}<//>
      <${Field} term="Came from">${r.source.startsWith("peer:") ? `peer ${r.source.slice(5)}` : `a client at ${r.source}`}<//>
      <${Field} term="Total time">${ms(r.latencyMs)}<//>
      <${Field} term="Time to first byte">${r.ttftMs == null ? "not measured" : ms(r.ttftMs)}<//>
      <${Field} term="Prompt tokens">${r.promptTokens ?? "not reported"}<//>
      <${Field} term="Completion tokens">${r.completionTokens ?? "not reported"}<//>
      <${Field} term="Streamed">${r.stream ? "yes" : "no"}<//>
      <${Field} term="Attempts">${attempts(r.attempts)}<//>
    </dl>
  <//>`;
}

export default function Page() {
  const [id, setId] = useState(() => hashQuery().get("id"));
  useEffect(() => {
    const onHash = () => setId(hashQuery().get("id"));
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  return id ? html`<${Detail} id=${id} />` : html`<${List} />`;
}
