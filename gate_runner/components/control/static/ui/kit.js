// What every page is made of: htm bound to preact, the hooks, and the small pieces pages
// share (cards, tables, copy buttons, empty and error states, formatting).
import { h, render } from "preact";
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import { call, live } from "./rpc.js";

export { call, h, html, live, render, useCallback, useEffect, useMemo, useRef, useState };

// A page's own stylesheet, linked once when the page first loads: a relative href is taken
// from pages/ (stylesheet("./peers.css") is /ui/pages/peers.css), an absolute one as it is.
const PAGES_DIR = new URL("../pages/", import.meta.url);

export function stylesheet(href) {
  const url = new URL(href, PAGES_DIR).pathname;
  if (!document.querySelector(`link[data-page-css="${url}"]`)) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = url;
    link.dataset.pageCss = url;
    document.head.append(link);
  }
}

// The result of one RPC call, re-read whenever the live socket (re)connects and whenever one
// of `events` arrives (debounced to once per `ms`). No timers that poll.
export function useRpc(method, params = {}, { events = [], ms = 250 } = {}) {
  const [state, setState] = useState({ data: undefined, error: null, loading: true });
  const key = JSON.stringify(params);
  useEffect(() => {
    let alive = true;
    let timer = null;
    const load = () => {
      call(method, params).then(
        (data) => alive && setState({ data, error: null, loading: false }),
        (error) => alive && setState((s) => ({ ...s, error, loading: false })),
      );
    };
    const soon = () => {
      if (timer === null) timer = setTimeout(() => { timer = null; load(); }, ms);
    };
    load();
    const offs = [live.on("connected", load), ...events.map((e) => live.on(e, soon))];
    return () => { alive = false; clearTimeout(timer); offs.forEach((off) => off()); };
  }, [method, key]);
  const reload = () => call(method, params).then((data) => setState({ data, error: null, loading: false }));
  return { ...state, reload };
}

export function Card({ title, actions, children, wide }) {
  return html`<section class=${"card" + (wide ? " wide" : "")}>
    ${title && html`<header class="card-head"><h2>${title}</h2>${actions}</header>`}
    ${children}
  </section>`;
}

export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

export function ErrorText({ error }) {
  if (!error) return null;
  const text = typeof error === "string" ? error : error.message;
  return html`<p class="error" role="alert">${text}</p>`;
}

export function Loading({ what = "Loading" }) {
  return html`<p class="muted" aria-busy="true">${what}…</p>`;
}

export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      window.prompt("Copy this:", text);
    }
  };
  return html`<button type="button" class="small" onClick=${copy}
    aria-label=${`${label}: ${text.slice(0, 40)}`}>${done ? "Copied" : label}</button>`;
}

export function Dot({ ok, warn, label }) {
  const kind = ok ? "ok" : warn ? "warn" : "bad";
  return html`<span class=${"dot " + kind} role="img" aria-label=${label}></span>`;
}

// A table whose rows become labelled blocks below 640 px (each cell says its column).
export function Table({ columns, rows, empty, caption }) {
  if (!rows.length) return html`<${Empty}>${empty}<//>`;
  return html`<div class="table-wrap"><table>
    ${caption && html`<caption class="visually-hidden">${caption}</caption>`}
    <thead><tr>${columns.map((c) => html`<th scope="col">${c.title}</th>`)}</tr></thead>
    <tbody>${rows.map((row, i) => html`<tr key=${row.key ?? i}>
      ${columns.map((c) => html`<td data-label=${c.title}>${c.cell(row)}</td>`)}
    </tr>`)}</tbody>
  </table></div>`;
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

export function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n < 10 && i ? n.toFixed(1) : Math.round(n)} ${units[i]}`;
}

export function ago(when) {
  if (!when) return "never";
  const t = typeof when === "number" ? when * 1000 : Date.parse(when);
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function shortId(peerId) {
  return peerId ? `${peerId.slice(0, 12)}…${peerId.slice(-6)}` : "";
}
