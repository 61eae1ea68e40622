// Peers (issue 12): who this node knows, how each link is doing, what each side may use of
// the other, and pairing: this node's invite, a friend's invite pasted (or opened as a
// link, #invite=...), a peer added by id, and the requests of nodes that dialed in unasked.
// Every change goes through the peers.* methods, which edit gate.yaml with spec.apply and
// the generation this page read; the lists re-read on live events, never on a timer.
import { QrCode } from "../ui/qr.js";
import { Card, CopyButton, Dot, Empty, ErrorText, Loading, Table, ago, bytes, call, html, live,
         ms, shortId, stylesheet, useEffect, useRef, useRpc, useState } from "../ui/kit.js";
import { Identicon } from "../ui/identicon.js";

// kit.stylesheet resolves a relative href against kit.js (ui/), so pass this module's URL.
stylesheet(new URL("./peers.css", import.meta.url).href);

// The three spellings of a node id that NodeId.parse accepts (identity/ids.py).
const PEER_ID = /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/;
const HEX_ID = /^[0-9a-fA-F]{64}$/;
const LABEL_ID = /^[a-zA-Z2-7]{52}$/;
// A peer's name (schema/node.v1.json $defs.name).
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const INVITE_MARK = "#invite=";

export function idProblem(text) {
  const id = text.trim();
  if (!id) return "Enter the peer's id: they find it on their dashboard, or with `gate id`.";
  if (PEER_ID.test(id) || HEX_ID.test(id) || LABEL_ID.test(id)) return null;
  if (id.startsWith("12D3KooW")) {
    return `That id is ${id.length} characters long with letters base58 does not use, or the wrong length: a peer id is 52 characters (12D3KooW…). Copy it again.`;
  }
  return "This is not a peer id: expected 12D3KooW… (52 characters), 64 hex characters, or a 52-character label.";
}

export function nameProblem(text) {
  if (!text) return "Give the peer a name, such as alice or home-pc.";
  if (!NAME.test(text)) return "Use lowercase letters, digits and '-' (not first or last), at most 63 characters.";
  return null;
}

// The server's message, in words: drop the JSON-RPC prefix and add its hint.
export function describe(error) {
  if (!error) return null;
  if (typeof error === "string") return error;
  if (error.conflict) {
    return "The spec changed while this page was open (another tab or `gate apply`). The page has read it again: check the lists, then try once more.";
  }
  let text = (error.message || "Something went wrong").replace(/^Invalid params: (\(params\): )?/, "");
  if (error.invalidSpec && error.data?.issues?.length) {
    text = error.data.issues.map((i) => (i.path ? `${i.path}: ` : "") + i.message + (i.hint ? ` (${i.hint})` : "")).join("\n");
  } else if (error.data?.hint) {
    text += ` (${error.data.hint})`;
  }
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

function rateText(limit) {
  if (!limit) return null;
  const parts = [];
  if (limit.requestsPerMinute) parts.push(`${limit.requestsPerMinute}/min`);
  if (limit.concurrent) parts.push(`${limit.concurrent} at once`);
  return parts.length ? parts.join(", ") : null;
}

function globs(text) {
  return text.split(/[\s,]+/).map((g) => g.trim()).filter(Boolean);
}

// -- the peers table ---------------------------------------------------------------------

function ModelList({ models, empty }) {
  if (!models || !models.length) return html`<span class="muted">${empty}</span>`;
  const shown = models.slice(0, 4);
  return html`<ul class="models">
    ${shown.map((m) => html`<li><code>${m}</code></li>`)}
    ${models.length > shown.length && html`<li class="muted" title=${models.slice(4).join(", ")}>+${models.length - shown.length} more</li>`}
  </ul>`;
}

function theirModels(peer) {
  if (peer.modelsStale && peer.models.length) {
    return html`<${ModelList} models=${peer.models} /><span class="muted small-note">last offer; away now</span>`;
  }
  const empty = peer.state === "connected" ? "none offered to you" : "not known until it connects";
  return html`<${ModelList} models=${peer.models} empty=${empty} />`;
}

function mineTheyMayUse(peer) {
  if (!peer.trusted) return html`<span class="muted">nothing</span>`;
  const shared = peer.sharedModels || ["*"];
  const all = shared.length === 1 && shared[0] === "*";
  const rate = rateText(peer.rateLimit);
  return html`${all ? html`<span>all your models</span>` : html`<${ModelList} models=${shared} />`}
    ${rate && html`<span class="muted small-note">limit ${rate}</span>`}`;
}

function Trust({ peer }) {
  const theyMay = peer.trusted;
  let weMay;
  if (peer.models.length && !peer.modelsStale) weMay = { yes: true, text: `yes, ${plural(peer.models.length, "model")}` };
  else if (peer.models.length) weMay = { yes: true, text: "yes, when it is back" };
  else if (peer.state === "connected") weMay = { yes: false, text: "no" };
  else weMay = { yes: null, text: "not known yet" };
  return html`<dl class="trust">
    <dt>May use my engines</dt>
    <dd class=${theyMay ? "yes" : "no"}>${theyMay ? "yes" : "no"}</dd>
    <dt>Lets me use theirs</dt>
    <dd class=${weMay.yes === null ? "unknown" : weMay.yes ? "yes" : "no"}>${weMay.text}</dd>
  </dl>`;
}

function stateLabel(peer) {
  if (peer.state === "connected") return `connected${peer.lastRttMs != null ? `, ${ms(peer.lastRttMs)}` : ""}`;
  if (peer.state === "dialing") return "dialing…";
  return "disconnected";
}

function PeerActions({ peer, onTest, testing, mutate }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const remove = async () => {
    setBusy(true);
    setError(null);
    try {
      await mutate("peers.rm", { name: peer.name });
    } catch (e) {
      setError(describe(e));
      setBusy(false);
      setConfirming(false);
    }
  };
  if (!peer.declared) return html`<span class="muted">not in gate.yaml</span>`;
  return html`<div class="actions">
    ${confirming
      ? html`<span class="confirm" role="group" aria-label=${`Remove ${peer.name}?`}>
          <span>Remove ${peer.name}?</span>
          <button type="button" class="small danger" disabled=${busy} onClick=${remove}>Yes, remove</button>
          <button type="button" class="small" disabled=${busy} onClick=${() => setConfirming(false)}>Keep</button>
        </span>`
      : html`<button type="button" class="small" disabled=${testing}
            aria-label=${`Test the link to ${peer.name}`} onClick=${() => onTest(peer.name)}>${testing ? "Testing…" : "Test"}</button>
          <button type="button" class="small danger" aria-label=${`Remove ${peer.name}`}
            onClick=${() => setConfirming(true)}>Remove</button>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </div>`;
}

function PeerTable({ peers, mutate }) {
  const [testing, setTesting] = useState(null);
  const [result, setResult] = useState(null);
  const test = async (name) => {
    setTesting(name);
    setResult(null);
    const began = performance.now();
    try {
      const peer = await call("peers.test", { name });
      const took = performance.now() - began;
      const rtt = peer.lastRttMs != null ? ms(peer.lastRttMs) : ms(took);
      const offer = peer.models.length
        ? `offers you ${plural(peer.models.length, "model")}: ${peer.models.join(", ")}`
        : "offers you no models";
      setResult({ ok: true, text: `${name} answered: round trip ${rtt}; it ${offer}.` });
    } catch (e) {
      setResult({ ok: false, text: `${name} did not answer: ${describe(e)}` });
    } finally {
      setTesting(null);
    }
  };
  const columns = [
    { title: "Peer", cell: (p) => html`<div class="peer-cell">
        <${Identicon} id=${p.peerId} size=${28} />
        <div><strong class="peer-name">${p.name}</strong>
          ${p.remoteName && p.remoteName !== p.name && html` <span class="muted">calls itself ${p.remoteName}</span>`}
          <br /><code class="muted" title=${p.peerId}>${shortId(p.peerId)}</code></div>
      </div>` },
    { title: "State", cell: (p) => html`<div><span class="state">
        <${Dot} ok=${p.state === "connected"} warn=${p.state === "dialing"} label=${p.state} />${stateLabel(p)}</span>
        ${p.state !== "connected" && p.lastSeen && html`<span class="muted small-note">seen ${ago(p.lastSeen)}</span>`}
        ${p.lastError && p.state !== "connected" && html`<span class="small-note warn-note">${p.lastError}</span>`}</div>` },
    { title: "Their models", cell: (p) => html`<div>${theirModels(p)}</div>` },
    { title: "Mine they may use", cell: (p) => html`<div>${mineTheyMayUse(p)}</div>` },
    { title: "Trust", cell: (p) => html`<${Trust} peer=${p} />` },
    { title: "Traffic", cell: (p) => html`<span class="traffic-cell">
        <span>${plural(p.requestsSent, "request")} sent</span>
        <span>${plural(p.requestsServed, "request")} served</span>
        <span class="muted">${bytes(p.bytesOut)} out, ${bytes(p.bytesIn)} in</span></span>` },
    { title: "Actions", cell: (p) => html`<${PeerActions} peer=${p} mutate=${mutate}
        testing=${testing === p.name} onTest=${test} />` },
  ];
  return html`
    <${Table} caption="Peers" columns=${columns} rows=${peers.map((p) => ({ ...p, key: p.peerId }))} />
    <p class=${"test-result" + (result ? (result.ok ? " ok" : " bad") : "")} role="status" aria-live="polite">${result?.text}</p>`;
}

// -- pending requests --------------------------------------------------------------------

function PendingRow({ request, mutate }) {
  const [open, setOpen] = useState(false);
  const [name, setName] = useState(request.name || "");
  const [trusted, setTrusted] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const nameError = open ? nameProblem(name) : null;
  const idBase = `pending-${request.peerId.slice(-10)}`;
  const approve = async (event) => {
    event.preventDefault();
    if (nameError) return;
    setBusy(true);
    setError(null);
    try {
      const params = { peerId: request.peerId, trusted };
      if (name !== request.name) params.name = name;
      await mutate("peers.approve", params);
    } catch (e) {
      setError(describe(e));
      setBusy(false);
    }
  };
  const ignore = async () => {
    setBusy(true);
    setError(null);
    try {
      await call("peers.ignore", { peerId: request.peerId });
      await mutate(null);
    } catch (e) {
      setError(describe(e));
      setBusy(false);
    }
  };
  const who = request.name || "a node with no name";
  return html`<li class="pending-item">
    <div class="pending-head">
      <${Identicon} id=${request.peerId} size=${32} />
      <div class="pending-who">
        <strong>${request.name || html`<span class="muted">(no name given)</span>`}</strong>
        <code title=${request.peerId}>${request.peerId}</code>
        <span class="muted small-note">
          ${request.address ? `from ${request.address}, ` : ""}first seen ${ago(request.firstSeen)}, last seen ${ago(request.lastSeen)}${request.count > 1 ? `, ${plural(request.count, "time")}` : ""}
        </span>
      </div>
      ${!open && html`<div class="actions">
        <button type="button" class="small primary" disabled=${busy} aria-label=${`Approve ${who}`} onClick=${() => setOpen(true)}>Approve…</button>
        <button type="button" class="small" disabled=${busy} aria-label=${`Ignore ${who}`} onClick=${ignore}>Ignore</button>
      </div>`}
    </div>
    ${open && html`<form class="approve-form" onSubmit=${approve} aria-label=${`Approve ${who}`}>
      <label for=${`${idBase}-name`}>Name in your gate.yaml</label>
      <input id=${`${idBase}-name`} value=${name} required autocomplete="off" spellcheck="false"
        aria-invalid=${nameError ? "true" : "false"} aria-describedby=${`${idBase}-name-msg`}
        onInput=${(e) => setName(e.currentTarget.value.trim())} />
      <p id=${`${idBase}-name-msg`} class=${nameError ? "field-error" : "muted field-note"}>${nameError || "Only you see this name."}</p>
      <label class="inline"><input type="checkbox" checked=${trusted} onChange=${(e) => setTrusted(e.currentTarget.checked)} />
        May use my engines</label>
      <p class="muted field-note">${trusted ? "It may send requests to your models." : "You may use its models (if it lets you); it may not use yours."}</p>
      <div class="row">
        <button type="submit" class="primary" disabled=${busy || !!nameError}>${busy ? "Approving…" : "Approve"}</button>
        <button type="button" disabled=${busy} onClick=${() => setOpen(false)}>Cancel</button>
        <button type="button" class="danger" disabled=${busy} onClick=${ignore}>Ignore</button>
      </div>
    </form>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </li>`;
}

function Pending({ pending, mutate }) {
  const { data, error, loading, reload } = pending;
  const [checking, setChecking] = useState(false);
  const check = () => { setChecking(true); reload().catch(() => {}).finally(() => setChecking(false)); };
  const actions = html`<button type="button" class="small" onClick=${check} disabled=${checking}>${checking ? "Checking…" : "Check again"}</button>`;
  const count = data?.length || 0;
  return html`<${Card} title=${count ? `Requests to connect (${count})` : "Requests to connect"} actions=${actions} wide>
    <${ErrorText} error=${error && describe(error)} />
    ${loading && !data ? html`<${Loading} what="Reading requests" />`
      : !count ? html`<${Empty}>No requests. When a node that is not in your gate.yaml dials in (a friend who accepted your invite), it waits here until you approve it.<//>`
      : html`<p class="muted">These nodes dialed in but are not in your gate.yaml. Nothing changes until you approve one; compare its picture and id with what your friend sees.</p>
        <ul class="pending-list">${data.map((r) => html`<${PendingRow} key=${r.peerId} request=${r} mutate=${mutate} />`)}</ul>`}
  <//>`;
}

// -- this node's invite ------------------------------------------------------------------

function Invite() {
  const [invite, setInvite] = useState(null);
  const [error, setError] = useState(null);
  const make = () => { setError(null); call("peers.invite").then(setInvite, setError); };
  useEffect(make, []);
  // An invite made before the P2P side listened holds no address: make it again once it does.
  const addressless = invite !== null && !invite.addrs.length;
  useEffect(() => {
    if (!addressless) return undefined;
    return live.on("component.status", (status) => { if (status?.kind === "p2p") make(); });
  }, [addressless]);
  const actions = html`<button type="button" class="small" onClick=${make}>New invite</button>`;
  return html`<${Card} title="Your invite" actions=${actions}>
    <${ErrorText} error=${error && describe(error)} />
    ${!invite && !error && html`<${Loading} what="Making an invite" />`}
    ${invite && html`
      <p class="muted">Send this to a friend. Their node adds yours when they paste it on
        their Peers page (or run <code>gate peers accept</code>); yours then shows their request
        here to approve.</p>
      ${invite.note && html`<p class="note" role="note"><strong>Note:</strong> ${invite.note}</p>`}
      <div class="invite">
        <${QrCode} text=${invite.invite} />
        <div class="invite-text">
          <label for="my-invite">Invite</label>
          <textarea id="my-invite" class="invite-token" readonly rows="4"
            onFocus=${(e) => e.currentTarget.select()}>${invite.invite}</textarea>
          <div class="row">
            <${CopyButton} text=${invite.invite} label="Copy invite" />
            <${CopyButton} text=${invite.link} label="Copy link" />
          </div>
          <p class="muted small-note">Valid until <time datetime=${invite.expiresAt}>${new Date(invite.expiresAt).toLocaleString()}</time>.
            ${invite.addrs.length ? ` Dials ${invite.addrs.join(", ")}.` : ""}</p>
        </div>
      </div>`}
  <//>`;
}

// -- a friend's invite -------------------------------------------------------------------

function tokenFromHash() {
  if (!location.hash.startsWith(INVITE_MARK)) return null;
  try {
    return decodeURIComponent(location.hash.slice(INVITE_MARK.length));
  } catch {
    return location.hash.slice(INVITE_MARK.length);
  }
}

function Accept({ mutate }) {
  const fromLink = useRef(tokenFromHash());
  const [text, setText] = useState(fromLink.current || "");
  const [name, setName] = useState("");
  const [trusted, setTrusted] = useState(false);
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  const box = useRef(null);
  useEffect(() => {
    if (fromLink.current === null) return;
    // The link did its job: keep it out of the address bar, so a reload does not reopen it.
    history.replaceState(null, "", "#/peers");
    box.current?.scrollIntoView({ block: "center" });
    box.current?.focus();
  }, []);
  const nameError = name ? nameProblem(name) : null;
  const submit = async (event) => {
    event.preventDefault();
    setDone(null);
    if (!text.trim()) { setError("Paste your friend's invite first: it starts with gate-invite:v1:"); return; }
    if (nameError) return;
    setBusy(true);
    setError(null);
    try {
      const params = { invite: text.trim(), trusted };
      if (name) params.name = name;
      const result = await mutate("peers.accept", params);
      setDone(`Added ${result.peer.name} (${shortId(result.peer.peerId)}) to your gate.yaml. Your node dials it now; they approve you on their side.`);
      setText("");
      setName("");
      setTrusted(false);
      fromLink.current = null;
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<${Card} title="Accept a friend's invite">
    <form onSubmit=${submit} class="accept-form" aria-label="Accept a friend's invite">
      ${fromLink.current && html`<p class="note" role="note">You opened an invite link. Check it, choose whether this friend may use your engines, then accept.</p>`}
      <label for="accept-invite">Their invite</label>
      <textarea id="accept-invite" ref=${box} rows="4" class="invite-token" spellcheck="false"
        placeholder="gate-invite:v1:…" aria-describedby="accept-invite-note"
        onInput=${(e) => { setText(e.currentTarget.value); setError(null); setDone(null); }} value=${text}></textarea>
      <p id="accept-invite-note" class="muted field-note">The text or the link they sent you. Its signature proves it comes from their node.</p>
      <label for="accept-name">Name <span class="muted">(optional)</span></label>
      <input id="accept-name" value=${name} autocomplete="off" spellcheck="false" placeholder="the name in their invite"
        aria-invalid=${nameError ? "true" : "false"} aria-describedby="accept-name-msg"
        onInput=${(e) => setName(e.currentTarget.value.trim())} />
      <p id="accept-name-msg" class=${nameError ? "field-error" : "muted field-note"}>${nameError || "What you call them in your gate.yaml."}</p>
      <label class="inline"><input type="checkbox" checked=${trusted} onChange=${(e) => setTrusted(e.currentTarget.checked)} />
        May use my engines</label>
      <div class="row form-end">
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Accepting…" : "Accept invite"}</button>
      </div>
      <${ErrorText} error=${error} />
      ${done && html`<p class="ok-text" role="status">${done}</p>`}
    </form>
  <//>`;
}

// -- a peer by id ------------------------------------------------------------------------

function AddPeer({ mutate }) {
  const empty = { name: "", id: "", addrs: "", trusted: false, models: "", rpm: "", concurrent: "" };
  const [form, setForm] = useState(empty);
  const [touched, setTouched] = useState({});
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (key) => (e) => {
    const target = e.currentTarget;
    setForm((f) => ({ ...f, [key]: target.type === "checkbox" ? target.checked : target.value }));
    setDone(null);
  };
  const problems = {
    name: nameProblem(form.name.trim()),
    id: idProblem(form.id),
    rpm: form.rpm && !(Number.isInteger(+form.rpm) && +form.rpm >= 1) ? "A whole number, 1 or more." : null,
    concurrent: form.concurrent && !(Number.isInteger(+form.concurrent) && +form.concurrent >= 1) ? "A whole number, 1 or more." : null,
  };
  // Checked from the first try to add on, then as you type: a message appearing on blur
  // would move the button away from under the pointer that is clicking it.
  const shown = (key) => touched.submit && problems[key];
  const submit = async (event) => {
    event.preventDefault();
    setTouched((t) => ({ ...t, submit: true }));
    setDone(null);
    if (Object.values(problems).some(Boolean)) {
      const first = ["name", "id", "rpm", "concurrent"].find((k) => problems[k]);
      // After the re-render that marks the field, so focus lands on it with its message.
      setTimeout(() => document.getElementById(`add-${first}`)?.focus(), 0);
      return;
    }
    const params = { name: form.name.trim(), id: form.id.trim() };
    const addrs = form.addrs.split(/\s+/).filter(Boolean);
    if (addrs.length) params.addrs = addrs;
    if (form.trusted) {
      params.trusted = true;
      const models = globs(form.models);
      if (models.length) params.models = models;
      const rate = {};
      if (form.rpm) rate.requestsPerMinute = +form.rpm;
      if (form.concurrent) rate.concurrent = +form.concurrent;
      if (Object.keys(rate).length) params.rateLimit = rate;
    }
    setBusy(true);
    setError(null);
    try {
      await mutate("peers.add", params);
      setDone(`Added ${params.name} to your gate.yaml.`);
      setForm(empty);
      setTouched({});
    } catch (e) {
      setError(describe(e));
    } finally {
      setBusy(false);
    }
  };
  const field = (key, label, input, note) => html`
    <label for=${`add-${key}`}>${label}</label>
    ${input}
    <p id=${`add-${key}-msg`} class=${shown(key) ? "field-error" : "muted field-note"}>${shown(key) || note}</p>`;
  const attrs = (key) => ({
    id: `add-${key}`, value: form[key], onInput: set(key),
    "aria-invalid": shown(key) ? "true" : "false", "aria-describedby": `add-${key}-msg`,
    autocomplete: "off", spellcheck: false,
  });
  return html`<${Card} title="Add a peer by id">
    <form onSubmit=${submit} class="add-form" aria-label="Add a peer by id" novalidate>
      ${field("name", "Name", html`<input ...${attrs("name")} placeholder="alice" />`, "Lowercase letters, digits and '-'.")}
      ${field("id", "Peer id", html`<input ...${attrs("id")} class="mono" placeholder="12D3KooW…" />`,
              "12D3KooW…, 64 hex characters or the 52-character label.")}
      ${field("addrs", html`Addresses <span class="muted">(optional)</span>`,
              html`<textarea ...${attrs("addrs")} rows="2" placeholder="/ip4/203.0.113.7/tcp/4001"></textarea>`,
              "One multiaddr per line. Without one, your node waits for the peer to dial in.")}
      <label class="inline"><input type="checkbox" id="add-trusted" checked=${form.trusted} onChange=${set("trusted")} />
        May use my engines</label>
      ${form.trusted ? html`<fieldset class="grant">
          <legend>What they may use</legend>
          ${field("models", html`Models <span class="muted">(optional)</span>`,
                  html`<input ...${attrs("models")} placeholder="llama3*, qwen2:*" />`,
                  "Globs, separated by commas. Empty: all your models.")}
          <div class="limits">
            <div>${field("rpm", "Requests a minute", html`<input ...${attrs("rpm")} type="number" min="1" step="1" inputmode="numeric" placeholder="no limit" />`, "Empty: no limit.")}</div>
            <div>${field("concurrent", "At once", html`<input ...${attrs("concurrent")} type="number" min="1" step="1" inputmode="numeric" placeholder="no limit" />`, "Empty: no limit.")}</div>
          </div>
        </fieldset>`
        : html`<p class="muted field-note">Off: you may use their models (if they let you); they may not use yours.</p>`}
      <div class="row form-end">
        <button type="submit" class="primary" disabled=${busy}>${busy ? "Adding…" : "Add peer"}</button>
      </div>
      <${ErrorText} error=${error} />
      ${done && html`<p class="ok-text" role="status">${done}</p>`}
    </form>
  <//>`;
}

// -- the page ----------------------------------------------------------------------------

export default function Page() {
  const status = useRpc("node.status", {}, { events: ["spec.applied"] });
  // component.status too: the peer table fills when the p2p host comes up, which can be
  // after the spec.applied of a peer added while py-libp2p was still loading.
  const peers = useRpc("peers.list", {}, {
    events: ["peer.connected", "peer.disconnected", "spec.applied", "request.completed",
             "component.status"],
    ms: 500,
  });
  const pending = useRpc("peers.pending", {}, {
    events: ["peer.pending", "peer.connected", "peer.disconnected", "spec.applied"],
  });
  // A change to the spec, made against the generation this page read. The lists re-read
  // right after (the spec.applied event would do it too, a moment later).
  const mutate = async (method, params) => {
    try {
      if (method === null) return null;
      const generation = status.data?.spec.generation;
      const sent = generation === undefined ? params : { ...params, expectedGeneration: generation };
      return await call(method, sent);
    } catch (e) {
      if (e.conflict) status.reload().catch(() => {});
      throw e;
    } finally {
      status.reload().catch(() => {});
      peers.reload().catch(() => {});
      pending.reload().catch(() => {});
    }
  };
  const list = peers.data;
  const connected = list ? list.filter((p) => p.state === "connected").length : 0;
  return html`<div class="peers-page">
    <${Card} title=${list?.length ? `Peers (${connected} of ${list.length} connected)` : "Peers"} wide>
      <${ErrorText} error=${peers.error && describe(peers.error)} />
      ${peers.loading && !list ? html`<${Loading} what="Reading peers" />`
        : list && !list.length ? html`<${Empty}>No peers yet. Send a friend your invite (below), paste theirs, or add a peer by its id.<//>`
        : list && html`<${PeerTable} peers=${list} mutate=${mutate} />`}
    <//>
    <${Pending} pending=${pending} mutate=${mutate} />
    <div class="grid pairing">
      <${Invite} />
      <${Accept} mutate=${mutate} />
      <${AddPeer} mutate=${mutate} />
    </div>
  </div>`;
}
