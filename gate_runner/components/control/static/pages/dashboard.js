// The dashboard: who this node is (name, id, identicon, an invite as text and QR code), its
// spec and components, the peers and engines it reaches, live traffic, and the last requests.
// Everything after the first read comes from live events; nothing polls.
import { QrCode } from "../ui/qr.js";
import { Card, CopyButton, Dot, Empty, ErrorText, Loading, ago, call, html, live, ms, shortId,
         stylesheet, useEffect, useRpc, useState } from "../ui/kit.js";
import { Identicon } from "../ui/identicon.js";
import { Traffic, TrafficCharts } from "../ui/chart.js";
import { RequestTable } from "./requests.js";

// kit.stylesheet resolves a relative href against kit.js (ui/), so pass this module's URL.
stylesheet(new URL("./dashboard.css", import.meta.url).href);

// Module-wide, so the chart keeps its last five minutes while another page is open.
const traffic = new Traffic(300);
live.on("request.completed", (record) => traffic.add(record));

const RECENT = 20;

function Identity({ status }) {
  const id = status.identity;
  return html`<${Card} title="This node">
    <div class="identity">
      <${Identicon} id=${id.peerId} size=${72} />
      <div class="identity-text">
        <p class="node-name">${status.name}</p>
        <p class="muted">Gate ${status.version}</p>
      </div>
    </div>
    <dl class="kv ids">
      <dt>Peer id</dt>
      <dd><code class="peer-id">${id.peerId}</code> <${CopyButton} text=${id.peerId} label="Copy peer id" /></dd>
      <dt>Label</dt><dd><code>${id.label}</code></dd>
      <dt>Hex</dt><dd><code class="hex">${id.hex}</code></dd>
    </dl>
    <p class="muted hint">Compare the picture and the first characters of the id with what your
      friend sees: they match only for this node.</p>
  <//>`;
}

function Invite() {
  const [invite, setInvite] = useState(null);
  const [error, setError] = useState(null);
  const make = () => { setError(null); call("peers.invite").then(setInvite, setError); };
  useEffect(make, []);
  const actions = invite && html`<button type="button" class="small" onClick=${make}>New invite</button>`;
  return html`<${Card} title="Invite a friend" actions=${actions}>
    <${ErrorText} error=${error} />
    ${!invite && !error && html`<${Loading} what="Making an invite" />`}
    ${invite && html`
      <p class="muted">Your friend scans this or pastes the invite on their Peers page (or runs
        <code>gate peers accept</code>): their node then knows how to reach yours.</p>
      ${invite.note && html`<p class="note" role="note"><strong>Note:</strong> ${invite.note}</p>`}
      <div class="invite">
        <${QrCode} text=${invite.invite} />
        <div class="invite-text">
          <label for="invite-token">Invite</label>
          <textarea id="invite-token" class="invite-token" readonly rows="4" value=${invite.invite}
            onFocus=${(e) => e.currentTarget.select()} />
          <div class="row">
            <${CopyButton} text=${invite.invite} label="Copy invite" />
            <${CopyButton} text=${invite.link} label="Copy link" />
          </div>
          <p class="muted">Valid until ${new Date(invite.expiresAt).toLocaleString()}.</p>
        </div>
      </div>`}
  <//>`;
}

function conditionOf(component, type) {
  return component.conditions.find((c) => c.type === type);
}

function Component({ component, generation }) {
  const ready = conditionOf(component, "Ready");
  const degraded = conditionOf(component, "Degraded");
  const isReady = ready?.status === true;
  const isDegraded = degraded?.status === true;
  const label = isReady ? (isDegraded ? "Ready but degraded" : "Ready") : "Not ready";
  const behind = component.observedGeneration < generation;
  return html`<li class="component">
    <div class="component-head">
      <${Dot} ok=${isReady && !isDegraded} warn=${isReady && isDegraded} label=${label} />
      <strong>${component.kind}</strong>${component.key && component.key !== component.kind && html` <span class="muted">${component.key}</span>`}
      <span class="component-state">${label}${ready?.reason ? ` · ${ready.reason}` : ""}</span>
    </div>
    ${ready?.message && html`<p class="component-msg">${ready.message}</p>`}
    ${isDegraded && degraded.message && html`<p class="component-msg warn-text">${degraded.reason}: ${degraded.message}</p>`}
    ${(behind || component.restarts > 0) && html`<p class="muted component-msg">
      ${behind ? `At generation ${component.observedGeneration} of ${generation}. ` : ""}
      ${component.restarts > 0 ? `Restarted ${component.restarts} time${component.restarts === 1 ? "" : "s"}.` : ""}</p>`}
  </li>`;
}

function Spec({ status }) {
  const spec = status.spec;
  const converged = spec.observedGeneration >= spec.generation;
  return html`<${Card} title="Spec" actions=${html`<a href="#/config">Edit</a>`}>
    ${spec.lastError && html`<div class="error spec-error" role="alert">
      <strong>The last change was rejected:</strong> ${spec.lastError}
      <br />The node keeps running generation ${spec.observedGeneration}. Fix it on <a href="#/config">Config</a>.</div>`}
    <dl class="kv">
      <dt>Generation</dt><dd>${spec.generation}
        ${converged ? html` <span class="ok-text">· in effect</span>`
                    : html` <span class="warn-text">· applying (in effect: ${spec.observedGeneration})</span>`}</dd>
      <dt>Observed</dt><dd>${spec.observedGeneration}</dd>
      <dt>Applied</dt><dd>${spec.lastAppliedAt ? `${ago(spec.lastAppliedAt)} (${new Date(spec.lastAppliedAt).toLocaleString()})` : "not yet"}</dd>
      <dt>Source</dt><dd>${spec.source ? html`<code>${spec.source}</code>` : "–"}</dd>
    </dl>
    <h3 class="sub">Components</h3>
    ${status.components.length
      ? html`<ul class="components">${status.components.map((c) => html`<${Component} key=${c.kind + c.key} component=${c} generation=${spec.generation} />`)}</ul>`
      : html`<${Empty}>No components yet: the node is starting.<//>`}
  <//>`;
}

function Peers() {
  const { data, error } = useRpc("peers.list", {}, { events: ["peer.connected", "peer.disconnected"] });
  const online = (data ?? []).filter((p) => p.state === "connected");
  const away = (data ?? []).length - online.length;
  return html`<${Card} title="Peers online" actions=${html`<a href="#/peers">Manage</a>`}>
    <${ErrorText} error=${error} />
    ${data === undefined && !error ? html`<${Loading} what="Loading peers" />`
      : !data?.length ? html`<${Empty}>No peers yet: share your invite with a friend, or add one on <a href="#/peers">Peers</a>.<//>`
      : html`
        ${online.length ? html`<ul class="plain-list">${online.map((p) => html`<li key=${p.peerId}>
            <${Identicon} id=${p.peerId} size=${20} />
            <strong>${p.name}</strong> <span class="muted" title=${p.peerId}>${shortId(p.peerId)}</span>
            <span class="right">${p.lastRttMs == null ? "–" : ms(p.lastRttMs)} <span class="muted">RTT</span></span></li>`)}</ul>`
          : html`<${Empty}>None of your ${data.length} peer${data.length === 1 ? " is" : "s are"} online right now.<//>`}
        ${online.length > 0 && away > 0 && html`<p class="muted">${away} more offline.</p>`}`}
  <//>`;
}

// Health states of providers/base.py Health; the breaker of routing/breaker.py.
function healthOf(p) {
  const { state, error } = p.health;
  if (p.breaker === "open") return { ok: false, warn: false, text: "resting after repeated errors (breaker open)" };
  if (state === "Healthy") return { ok: true, text: "healthy" };
  if (state === "Degraded") return { ok: false, warn: true, text: error ? `degraded: ${error}` : "degraded: answers slowly" };
  if (state === "Unknown") return { ok: false, warn: true, text: "not checked yet" };
  return { ok: false, warn: false, text: error ? `not answering: ${error}` : "not answering" };
}

function Providers() {
  const { data, error } = useRpc("providers.list", {}, { events: ["component.status"], ms: 1000 });
  return html`<${Card} title="Engines" actions=${html`<a href="#/providers">Manage</a>`}>
    <${ErrorText} error=${error} />
    ${data === undefined && !error ? html`<${Loading} what="Loading engines" />`
      : !data?.length ? html`<${Empty}>No engines found: start Ollama or LM Studio, or add one on <a href="#/providers">Providers</a>.<//>`
      : html`<ul class="plain-list">${data.map((p) => {
          const h = healthOf(p);
          return html`<li key=${p.name}>
            <${Dot} ok=${h.ok} warn=${h.warn} label=${h.text} />
            <strong>${p.name}</strong> <span class="muted">${p.kind} · ${p.models.length} model${p.models.length === 1 ? "" : "s"}</span>
            <span class="right">${p.health.latencyMs == null ? "" : ms(p.health.latencyMs)}</span>
            <span class="provider-health">${h.text}</span>
          </li>`;
        })}</ul>`}
  <//>`;
}

function RecentRequests() {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let alive = true;
    let pending = [];
    let timer = null;
    const load = () => call("requests.list", { limit: RECENT }).then(
      (list) => { if (alive) { pending = []; setRows(list); setError(null); } },
      (e) => alive && setError(e));
    const flush = () => {
      timer = null;
      const fresh = pending.reverse();
      pending = [];
      setRows((old) => {
        const seen = new Set((old ?? []).map((r) => r.id));
        return [...fresh.filter((r) => !seen.has(r.id)), ...(old ?? [])].slice(0, RECENT);
      });
    };
    const onRequest = (record) => {
      pending.push(record);
      if (pending.length > RECENT) pending.shift();
      if (timer === null) timer = setTimeout(flush, 250);
    };
    load();
    const offs = [live.on("connected", load), live.on("request.completed", onRequest)];
    return () => { alive = false; clearTimeout(timer); offs.forEach((off) => off()); };
  }, []);
  return html`<${Card} wide title="Last requests" actions=${html`<a href="#/requests">All requests</a>`}>
    <${ErrorText} error=${error} />
    ${rows === null && !error ? html`<${Loading} what="Loading requests" />`
      : rows && html`<div class="recent"><${RequestTable} rows=${rows} caption="The last 20 requests"
          empty=${html`No requests yet. Point an OpenAI client at this node or open <a href="#/try">Try it</a>.`} /></div>`}
  <//>`;
}

export default function Page() {
  const { data: status, error } = useRpc("node.status", {}, {
    events: ["spec.applied", "spec.rejected", "component.status", "peer.connected", "peer.disconnected"],
  });
  if (error && !status) return html`<${ErrorText} error=${error} />`;
  if (!status) return html`<${Loading} what="Loading the node's status" />`;
  return html`<div class="dashboard grid">
    <div class="stack">
      <${Identity} status=${status} />
      <${Providers} />
      <${Peers} />
    </div>
    <${Invite} />
    <${Spec} status=${status} />
    <${Card} wide title="Traffic"><${TrafficCharts} traffic=${traffic} /><//>
    <${RecentRequests} />
  </div>`;
}
