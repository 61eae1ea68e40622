// The config page: a form and the YAML side by side, both editing one spec. Every keystroke
// is checked by the node (spec.validate, debounced), a diff comes before apply, apply carries
// the generation the edit started from (a stale one is a conflict, shown with "reload" and
// "show their change"), and history rolls back in one click. The page never holds a secret:
// the spec names env vars (apiKeys, secretEnv, tokenEnv), and nothing here resolves them.
import { Card, Empty, ErrorText, Loading, ago, call, html, live, stylesheet, useEffect, useRef,
         useState } from "../ui/kit.js";
import { emitYaml, loadCodeMirror, mountEditor, yamlReader } from "../ui/editor.js";

stylesheet(new URL("./config.css", import.meta.url).href);

// gate_runner/spec/yamlsafe.py MAX_SPEC_BYTES (and spec.apply's maxLength): the node refuses
// more, so the page refuses it first and sends nothing.
const MAX_SPEC_BYTES = 1 << 20;
const SOURCE = "web-ui";
const DEBOUNCE_MS = 300;

const DURATION = "A duration, such as 500ms, 30s or 1m30s.";
// The settings people change most (schema/node.v1.json); the rest is in the YAML.
const GROUPS = [
  { title: "Node", fields: [
    { path: ["metadata", "name"], label: "Name", help: "Lowercase letters, digits and '-', as peers see it." },
  ] },
  { title: "Listen addresses", fields: [
    { path: ["spec", "listen", "api"], label: "API (OpenAI-compatible)", placeholder: "127.0.0.1:31145",
      help: "host:port; off loopback it needs apiKeys." },
    { path: ["spec", "listen", "control"], label: "Control plane (this UI)", placeholder: "127.0.0.1:8145",
      help: "host:port; changing it moves this page to the new address." },
    { path: ["spec", "listen", "p2p"], label: "P2P", type: "lines", placeholder: "/ip4/0.0.0.0/tcp/41145",
      help: "Multiaddrs for peers and relays, one per line." },
  ] },
  { title: "Trust", fields: [
    { path: ["spec", "trust", "mode"], label: "Who may use this node's engines", type: "select", default: "friends",
      options: [["private", "Private: nobody"], ["friends", "Friends: peers with an allow rule"],
                ["public", "Public: any peer that connects"]] },
  ] },
  { title: "Routing", fields: [
    { path: ["spec", "routing", "strategy"], label: "Strategy", type: "select", default: "prefer-local",
      options: [["local-only", "Local only: never use peers"], ["prefer-local", "Prefer local engines"],
                ["load-balance", "Balance across local engines and peers"]] },
    { path: ["spec", "routing", "retry", "maxAttempts"], label: "Attempts per request", type: "int",
      min: 1, max: 100, placeholder: "3", help: "In total, including the first (1 to 100)." },
    { path: ["spec", "routing", "retry", "initialBackoff"], label: "First backoff", placeholder: "200ms", help: DURATION },
    { path: ["spec", "routing", "retry", "maxBackoff"], label: "Longest backoff", placeholder: "5s", help: DURATION },
    { path: ["spec", "routing", "circuitBreaker", "failureThreshold"], label: "Failures that open the breaker",
      type: "int", min: 1, placeholder: "5", help: "Consecutive failures before a target is skipped." },
    { path: ["spec", "routing", "circuitBreaker", "cooldown"], label: "Breaker cooldown", placeholder: "5s", help: DURATION },
  ] },
  { title: "Engines", fields: [
    { path: ["spec", "providers", "discovery", "enabled"], label: "Find engines on this machine (Ollama, LM Studio)",
      type: "bool", default: true },
  ] },
  { title: "Request log", fields: [
    { path: ["spec", "requestLog", "retention"], label: "Records kept", type: "int", min: 0, placeholder: "100000" },
    { path: ["spec", "requestLog", "maxAge"], label: "Longest kept", placeholder: "168h", help: DURATION },
  ] },
  { title: "API limits", fields: [
    { path: ["spec", "limits", "maxRequestBody"], label: "Largest request body", type: "size", placeholder: "8MiB",
      help: "Bytes, or a size such as 512KiB, 8MiB; larger requests get 413." },
    { path: ["spec", "limits", "maxResponseBody"], label: "Largest engine response", type: "size", placeholder: "64MiB" },
    { path: ["spec", "limits", "bodyTimeout"], label: "Request body timeout", placeholder: "30s", help: DURATION },
  ] },
];

function getPath(doc, path) {
  let v = doc;
  for (const k of path) v = v && typeof v === "object" ? v[k] : undefined;
  return v;
}

// A copy of doc with path set to value; undefined removes the key, and the maps it leaves
// empty (a cleared field means "use the default").
export function setPath(doc, path, value) {
  const out = structuredClone(doc);
  const chain = [out];
  let node = out;
  for (const k of path.slice(0, -1)) {
    if (!node[k] || typeof node[k] !== "object" || Array.isArray(node[k])) {
      if (value === undefined) return out;
      node[k] = {};
    }
    node = node[k];
    chain.push(node);
  }
  const last = path[path.length - 1];
  if (value === undefined) {
    delete node[last];
    for (let i = chain.length - 1; i > 0 && !Object.keys(chain[i]).length; i--) {
      delete chain[i - 1][path[i - 1]];
    }
  } else {
    node[last] = value;
  }
  return out;
}

function toText(field, value) {
  if (value === undefined || value === null) return "";
  if (field.type === "lines") return Array.isArray(value) ? value.join("\n") : String(value);
  return String(value);
}

function fromText(field, text) {
  if (field.type === "lines") {
    const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.length ? lines : undefined;
  }
  const t = text.trim();
  if (!t) return undefined;
  // A number where the schema wants one; anything else goes in as typed, for the node to judge.
  if ((field.type === "int" || field.type === "size") && /^-?\d+$/.test(t)) return Number(t);
  return t;
}

function fieldId(field) { return "cfg-" + field.path.join("-"); }

// One text-like field. It keeps what is typed (a half-written line, "1.") while the
// document holds its parsed value, and follows the document when the YAML changes it.
function TextField({ field, value, onChange }) {
  const [draft, setDraft] = useState(() => toText(field, value));
  useEffect(() => {
    if (JSON.stringify(fromText(field, draft)) !== JSON.stringify(value ?? undefined)) {
      setDraft(toText(field, value));
    }
  }, [JSON.stringify(value)]);
  const id = fieldId(field);
  const input = (e) => { setDraft(e.target.value); onChange(field.path, fromText(field, e.target.value)); };
  const described = field.help ? `${id}-help` : undefined;
  const control = field.type === "lines"
    ? html`<textarea id=${id} rows="2" value=${draft} onInput=${input} placeholder=${field.placeholder}
        aria-describedby=${described} spellcheck="false"></textarea>`
    : html`<input id=${id} type="text" value=${draft} onInput=${input} placeholder=${field.placeholder}
        aria-describedby=${described} spellcheck="false" autocomplete="off"
        inputmode=${field.type === "int" ? "numeric" : undefined} />`;
  return html`<div class="field">
    <label for=${id}>${field.label}</label>
    ${control}
    ${field.help && html`<small id=${described} class="muted">${field.help}${field.placeholder
      ? ` Default: ${field.placeholder}.` : ""}</small>`}
    ${!field.help && field.placeholder && html`<small class="muted">Default: ${field.placeholder}.</small>`}
  </div>`;
}

function Field({ field, doc, onChange }) {
  const value = getPath(doc, field.path);
  const id = fieldId(field);
  if (field.type === "bool") {
    const checked = value === undefined ? field.default : Boolean(value);
    return html`<div class="field"><label class="inline" for=${id}>
      <input id=${id} type="checkbox" checked=${checked}
        onChange=${(e) => onChange(field.path, e.target.checked)} />${field.label}</label></div>`;
  }
  if (field.type === "select") {
    const current = value ?? field.default;
    const known = field.options.some(([v]) => v === current);
    return html`<div class="field">
      <label for=${id}>${field.label}</label>
      <select id=${id} value=${current} onChange=${(e) => onChange(field.path, e.target.value)}>
        ${!known && html`<option value=${current}>${current}</option>`}
        ${field.options.map(([v, label]) => html`<option value=${v}>${label}</option>`)}
      </select>
      ${field.path.join(".") === "spec.trust.mode" && current === "public" && html`
        <p class="warn-box" role="note"><strong>Public:</strong> any peer that connects may use your
          engines and your compute, with no allow rule. Choose this only for a node you mean to share
          with everyone.</p>`}
    </div>`;
  }
  return html`<${TextField} field=${field} value=${value} onChange=${onChange} />`;
}

function SettingsForm({ doc, disabled, note, onChange }) {
  if (!doc) return html`<${Loading} what="Reading the spec" />`;
  return html`<form class="settings" onSubmit=${(e) => e.preventDefault()} aria-describedby="form-note">
    <p id="form-note" class=${note ? "form-note warn-box" : "form-note muted"} role=${note ? "status" : undefined}>
      ${note ?? "Each change here rewrites the YAML; clear a field to use its default."}</p>
    <fieldset disabled=${disabled} class="groups">
      ${GROUPS.map((group) => html`<fieldset class="group">
        <legend>${group.title}</legend>
        ${group.fields.map((field) => html`<${Field} key=${field.path.join(".")}
          field=${field} doc=${doc} onChange=${onChange} />`)}
      </fieldset>`)}
    </fieldset>
  </form>`;
}

function IssueList({ issues, onShow }) {
  if (!issues.length) return null;
  return html`<div class="issues" role="alert">
    <h3>${issues.length === 1 ? "1 problem" : `${issues.length} problems`} in this YAML</h3>
    <ul>${issues.map((issue, i) => html`<li key=${i}>
      <button type="button" class="small link-like" onClick=${() => onShow(issue.line ?? 1)}
        title="Go to this line in the editor">${issue.line ? `Line ${issue.line}` : "Document"}${
          issue.column ? `, column ${issue.column}` : ""}</button>
      ${issue.path ? html` <code>${issue.path}</code>` : html` <span class="muted">(whole document)</span>`}
      <p>${issue.message}${issue.hint && html`<br /><span class="muted">How to fix: ${issue.hint}</span>`}</p>
    </li>`)}</ul>
  </div>`;
}

// A unified diff, coloured per line (the +/- stay in the text for screen readers and copy).
function Diff({ text, label }) {
  const lines = text.replace(/\n$/, "").split("\n");
  return html`<pre class="diff" tabindex="0" aria-label=${label}><code>${lines.map((line) => {
    const kind = line.startsWith("+++") || line.startsWith("---") ? "head"
      : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "";
    return html`<span class=${"dl " + kind}>${line}\n</span>`;
  })}</code></pre>`;
}

// spec.diff gives current -> proposed; "their change" is base -> current, the same diff
// read backwards, with its two headers named by generation.
export function invertDiff(text, from, to) {
  const out = [];
  let dels = [];
  let adds = [];
  const flush = () => { out.push(...dels, ...adds); dels = []; adds = []; };
  for (const line of text.split("\n")) {
    if (line.startsWith("--- ")) { flush(); out.push(`--- ${from}`); }
    else if (line.startsWith("+++ ")) { flush(); out.push(`+++ ${to}`); }
    else if (line.startsWith("@@")) { flush(); out.push(line.replace(/^@@ -(\S+) \+(\S+) @@/, "@@ -$2 +$1 @@")); }
    // Swapped, and within each run of changes the removed lines come first, as diff writes them.
    else if (line.startsWith("+")) dels.push("-" + line.slice(1));
    else if (line.startsWith("-")) adds.push("+" + line.slice(1));
    else { flush(); out.push(line); }
  }
  flush();
  return out.join("\n");
}

function TheirChange({ theirs }) {
  return html`<div class="theirs">
    <h3>Their change: generation ${theirs.from} → ${theirs.to}</h3>
    ${theirs.entries.length ? html`<ul class="plain">${theirs.entries.map((e) => html`<li key=${e.generation}>
      Generation ${e.generation}, ${ago(e.appliedAt)}, by ${e.origin} from <code>${e.source}</code></li>`)}</ul>` : ""}
    ${theirs.diff ? html`<${Diff} text=${theirs.diff} label="Their change" />`
      : html`<p class="muted">Their spec says the same as the one you started from.</p>`}
  </div>`;
}

function Confirm({ ask, onClose }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog && !dialog.open) dialog.showModal();
  }, [ask]);
  const done = (ok) => { ref.current?.close(); onClose(); if (ok) ask.action(); };
  return html`<dialog ref=${ref} class="confirm-dialog" aria-labelledby="confirm-title"
      aria-describedby="confirm-body" onCancel=${(e) => { e.preventDefault(); done(false); }}>
    <h2 id="confirm-title">${ask.title}</h2>
    <p id="confirm-body">${ask.body}</p>
    <div class="row end">
      <button type="button" onClick=${() => done(false)}>${ask.cancel ?? "Cancel"}</button>
      <button type="button" class=${ask.danger ? "primary danger-fill" : "primary"}
        onClick=${() => done(true)}>${ask.confirm}</button>
    </div>
  </dialog>`;
}

function Conditions({ components }) {
  if (!components?.length) return null;
  return html`<ul class="conditions">${components.map((c) => {
    const ready = c.conditions?.find((x) => x.type === "Ready");
    return html`<li key=${c.kind + c.key}>
      <span class=${"dot " + (ready?.status ? "ok" : "bad")} aria-hidden="true"></span>
      <strong>${c.kind}${c.key && c.key !== c.kind ? `/${c.key}` : ""}</strong>
      ${" "}${ready ? (ready.status ? "ready" : "not ready") : "no status yet"}
      ${ready?.reason && html` <span class="muted">· ${ready.reason}${ready.message ? `: ${ready.message}` : ""}</span>`}
    </li>`;
  })}</ul>`;
}

function ApplyResult({ result, onClose }) {
  const rolled = result.rolledBackTo !== undefined;
  const head = !result.changed
    ? `Nothing changed: generation ${result.generation} already says this.`
    : rolled ? `Rolled back: generation ${result.generation} has the spec of generation ${result.rolledBackTo}.`
    : `Applied as generation ${result.generation}.`;
  const conv = result.converged === undefined ? null
    : result.converged ? "Every component has converged to it."
    : `Not converged yet (components at generation ${result.observedGeneration ?? "?"}): see their state below.`;
  return html`<section class="banner ok-banner" role="status" aria-labelledby="result-title">
    <div class="banner-head"><h2 id="result-title">${head}</h2>
      <button type="button" class="small" onClick=${onClose}>Dismiss</button></div>
    ${conv && html`<p>${conv} gate.yaml on disk has the change, with its comments kept.</p>`}
    <${Conditions} components=${result.components} />
  </section>`;
}

function History({ entries, error, onRollback }) {
  if (error) return html`<${ErrorText} error=${error} />`;
  if (!entries) return html`<${Loading} what="Reading the history" />`;
  if (!entries.length) return html`<${Empty}>No generations yet.<//>`;
  const current = entries[0].generation; // newest first: the one the node runs
  return html`<div class="table-wrap"><table class="history">
    <caption class="visually-hidden">Accepted generations, newest first</caption>
    <thead><tr><th scope="col">Generation</th><th scope="col">Applied</th><th scope="col">By</th>
      <th scope="col">Source</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
    <tbody>${entries.map((e) => html`<tr key=${e.generation}>
      <td data-label="Generation"><span><strong>${e.generation}</strong>${e.generation === current
        ? html` <span class="badge">running</span>` : ""}</span></td>
      <td data-label="Applied"><time datetime=${e.appliedAt} title=${e.appliedAt}>${ago(e.appliedAt)}</time></td>
      <td data-label="By">${e.origin}</td>
      <td data-label="Source" class="source"><code>${e.source}</code></td>
      <td data-label="Action"><span>${e.generation !== current && html`<button type="button" class="small"
        onClick=${() => onRollback(e.generation)}>Roll back to ${e.generation}</button>`}</span></td>
    </tr>`)}</tbody>
  </table></div>`;
}

function tooBigMessage(bytes) {
  return `That paste is ${mib(bytes)}: a spec may be at most 1 MiB (${MAX_SPEC_BYTES.toLocaleString("en")} bytes), `
    + "so it was not pasted and nothing was sent to the node. Paste a smaller spec; "
    + "a spec is a few KiB.";
}

function byteSize(text) { return new TextEncoder().encode(text).length; }
function mib(bytes) { return `${(bytes / (1 << 20)).toFixed(1)} MiB`; }

export default function Page() {
  const [base, setBase] = useState(null); // { generation, yaml, document } as loaded
  const [loadError, setLoadError] = useState(null);
  const [text, setText] = useState("");
  const [doc, setDoc] = useState(null); // what the form shows: the last valid document
  const [check, setCheck] = useState({ state: "idle" });
  const [issues, setIssues] = useState([]);
  const [formNote, setFormNote] = useState(null);
  const [review, setReview] = useState(null); // { text, diff }
  const [busy, setBusy] = useState(null);
  const [actionError, setActionError] = useState(null);
  const [result, setResult] = useState(null);
  const [conflict, setConflict] = useState(null); // { expected, current }
  const [external, setExternal] = useState(null); // a spec.applied under an edit
  const [tooBig, setTooBig] = useState(null);
  const [theirs, setTheirs] = useState(null); // { from, to, diff, entries }
  const [hist, setHistory] = useState({ entries: null, error: null });
  const [ask, setAsk] = useState(null);
  const [editorKind, setEditorKind] = useState(null);

  const hostRef = useRef(null);
  const editor = useRef(null);
  const reader = useRef(null);
  const textRef = useRef("");
  const baseRef = useRef(null);
  const seq = useRef(0);
  const timer = useRef(null);
  const applying = useRef(false);
  const leaving = useRef(false);
  const yamlPending = useRef(false); // a YAML edit the form has not followed yet
  const docRef = useRef(null);
  docRef.current = doc;
  const dirty = base !== null && text !== base.yaml;
  const dirtyRef = useRef(false);
  dirtyRef.current = dirty;

  const loadHistory = () => call("spec.history", { limit: 20 }).then(
    (entries) => setHistory({ entries, error: null }),
    (error) => setHistory((h) => ({ ...h, error })));

  const load = async () => {
    try {
      const got = await call("spec.get");
      baseRef.current = got;
      textRef.current = got.yaml;
      yamlPending.current = false;
      clearTimeout(timer.current);
      seq.current++;
      setBase(got); setText(got.yaml); setDoc(got.document); setLoadError(null);
      setIssues([]); setFormNote(null); setReview(null); setConflict(null); setExternal(null);
      setTheirs(null); setTooBig(null); setCheck({ state: "valid" });
      editor.current?.setText(got.yaml);
      editor.current?.setIssues([]);
    } catch (e) {
      setLoadError(e);
    }
    loadHistory();
  };

  const validate = async (value) => {
    const mine = ++seq.current;
    if (byteSize(value) > MAX_SPEC_BYTES) { setCheck({ state: "toobig" }); return; }
    let parsed = null;
    let unreadable = null;
    try {
      parsed = reader.current ? reader.current(value) : null;
      if (!reader.current) unreadable = "The form needs the full editor, which did not load: edit the YAML.";
    } catch (e) {
      unreadable = `The form cannot follow this YAML (${e.message}); edit it as YAML.`;
    }
    try {
      await call("spec.validate", { yaml: value, source: SOURCE });
      if (mine !== seq.current) return;
      setIssues([]); editor.current?.setIssues([]);
      setCheck({ state: "valid" });
      if (parsed) { setDoc(parsed); setFormNote(null); yamlPending.current = false; } else setFormNote(unreadable);
    } catch (e) {
      if (mine !== seq.current) return;
      if (e.data?.issues) {
        setIssues(e.data.issues); editor.current?.setIssues(e.data.issues);
        setCheck({ state: "invalid" });
        setFormNote("The form waits until the YAML is valid again: fix the problems listed under it.");
      } else {
        setCheck({ state: "error", message: e.message });
      }
    }
  };

  const schedule = (value) => {
    clearTimeout(timer.current);
    seq.current++;
    setCheck({ state: "checking" });
    timer.current = setTimeout(() => validate(value), DEBOUNCE_MS);
  };

  const edited = (value) => {
    textRef.current = value;
    setText(value); setReview(null); setTooBig(null); setActionError(null);
    schedule(value);
  };

  const formChange = (path, value) => {
    // YAML typed in the last moments is not in the form's document yet: start from the text.
    let from = docRef.current;
    if (yamlPending.current && reader.current) {
      try { from = reader.current(textRef.current); } catch { return; }
    }
    yamlPending.current = false;
    const next = setPath(from, path, value);
    const yaml = emitYaml(next);
    docRef.current = next;
    setDoc(next);
    editor.current?.setText(yaml);
    edited(yaml);
  };

  // The editor, once; the spec, once it is there.
  useEffect(() => {
    let alive = true;
    loadCodeMirror().then((cm) => { reader.current = yamlReader(cm); }, () => {});
    mountEditor(hostRef.current, {
      text: textRef.current,
      label: "The spec as YAML",
      maxBytes: MAX_SPEC_BYTES,
      onChange: (value) => { yamlPending.current = true; edited(value); },
      onTooBig: (bytes) => setTooBig(bytes),
    }).then((ed) => {
      if (!alive) { ed.destroy(); return; }
      editor.current = ed;
      setEditorKind(ed.kind);
      ed.setText(textRef.current);
    });
    load();
    return () => { alive = false; clearTimeout(timer.current); editor.current?.destroy(); editor.current = null; };
  }, []);

  // Someone else changed the spec: follow it when there is nothing to lose, else say so.
  useEffect(() => {
    const changed = (data) => {
      if (applying.current) return;
      const known = baseRef.current?.generation ?? 0;
      if (data.generation === undefined || data.generation <= known) return;
      if (!dirtyRef.current) load();
      else { setExternal(data); loadHistory(); }
    };
    const offApplied = live.on("spec.applied", changed);
    const offConnected = live.on("connected", () => {
      if (!baseRef.current) return;
      call("spec.get").then((got) => changed({ generation: got.generation, origin: "unknown" }), () => {});
    });
    return () => { offApplied(); offConnected(); };
  }, []);

  // Leaving with unsaved edits asks first. A link to another page (the tabs, the name) is
  // caught on click, before the hash changes, and asked about; "leave" then follows it. A
  // hash change no click made (Back, a typed address) cannot be blocked, and the shell's
  // hashchange listener runs before any of ours; but popstate comes first, so there the
  // hash is put back to #/config (the shell then reads it and stays) and the same question
  // is asked. Closing or reloading the tab gets the browser's own beforeunload prompt.
  useEffect(() => {
    const askLeave = (target) => setAsk({
      title: "Leave without applying?",
      body: "Your edits to the spec are not applied yet. If you leave this page they are dropped.",
      confirm: "Drop edits and leave", cancel: "Stay and keep editing", danger: true,
      action: () => { leaving.current = true; location.hash = target; },
    });
    const away = (hash) => !/^#\/?config\b/.test(hash);
    const onClick = (event) => {
      const link = event.target.closest?.("a[href^='#']");
      if (!link || !dirtyRef.current || leaving.current || event.defaultPrevented) return;
      const target = link.getAttribute("href");
      if (!away(target) || target === "#main") return;
      event.preventDefault();
      askLeave(target);
    };
    const onPop = () => {
      if (!dirtyRef.current || leaving.current || !away(location.hash)) return;
      const target = location.hash;
      window.history.replaceState(null, "", "#/config");
      askLeave(target);
    };
    const onUnload = (event) => {
      if (!dirtyRef.current) return;
      event.preventDefault();
      event.returnValue = "";
    };
    document.addEventListener("click", onClick, true);
    window.addEventListener("popstate", onPop);
    window.addEventListener("beforeunload", onUnload);
    return () => {
      document.removeEventListener("click", onClick, true);
      window.removeEventListener("popstate", onPop);
      window.removeEventListener("beforeunload", onUnload);
    };
  }, []);

  const failed = (e) => {
    if (e.conflict) {
      setConflict({ current: e.data?.current, expected: e.data?.expected });
      setReview(null);
    } else if (e.data?.issues) {
      setIssues(e.data.issues); editor.current?.setIssues(e.data.issues);
      setCheck({ state: "invalid" }); setReview(null);
    } else {
      setActionError(e);
    }
  };

  const reviewChanges = async () => {
    const value = textRef.current;
    if (byteSize(value) > MAX_SPEC_BYTES) { setCheck({ state: "toobig" }); return; }
    setBusy("review"); setActionError(null); setResult(null);
    try {
      const got = await call("spec.diff", { yaml: value, source: SOURCE });
      setReview({ text: value, diff: got.diff, generation: got.generation });
      // The review sits under the (long) form: bring it to the eye and the keyboard.
      requestAnimationFrame(() => {
        const heading = document.getElementById("review-title");
        heading?.scrollIntoView({ block: "start", behavior: "smooth" });
        heading?.focus({ preventScroll: true });
      });
    } catch (e) { failed(e); } finally { setBusy(null); }
  };

  const apply = async () => {
    const value = review?.text;
    if (value === undefined || value !== textRef.current) return;
    setBusy("apply"); setActionError(null);
    applying.current = true;
    try {
      const got = await call("spec.apply", {
        yaml: value, source: SOURCE, expectedGeneration: baseRef.current.generation,
      });
      setResult(got);
      await load();
      requestAnimationFrame(() => document.getElementById("result-title")?.scrollIntoView({ block: "nearest" }));
    } catch (e) { failed(e); } finally { applying.current = false; setBusy(null); }
  };

  const showTheirs = async () => {
    setBusy("theirs");
    try {
      const from = baseRef.current.generation;
      const [got, entries] = await Promise.all([
        call("spec.diff", { yaml: baseRef.current.yaml, source: SOURCE }),
        call("spec.history", { limit: 20 }),
      ]);
      setTheirs({
        from, to: got.generation,
        diff: got.diff ? invertDiff(got.diff, `generation ${from} (yours started here)`,
                                    `generation ${got.generation} (now running)`) : "",
        entries: entries.filter((e) => e.generation > from),
      });
    } catch (e) { setActionError(e); } finally { setBusy(null); }
  };

  const askReload = () => setAsk({
    title: "Load the current spec?",
    body: "This drops your edits and loads the spec the node runs now. Copy anything you want to keep from the YAML first.",
    confirm: "Drop my edits and reload", danger: true, action: load,
  });

  const askRollback = (generation) => setAsk({
    title: `Roll back to generation ${generation}?`,
    body: `The node re-applies the spec of generation ${generation} as a new generation and rewrites gate.yaml.`
      + (dirtyRef.current ? " Your unapplied edits here are dropped." : ""),
    confirm: `Roll back to ${generation}`, danger: true,
    action: async () => {
      setBusy("rollback"); setActionError(null);
      applying.current = true;
      try {
        setResult(await call("spec.rollback", { generation }));
        await load();
      } catch (e) { failed(e); } finally { applying.current = false; setBusy(null); }
    },
  });

  const discard = () => setAsk({
    title: "Discard your edits?", body: "The YAML and the form go back to the spec the node runs.",
    confirm: "Discard edits", danger: true, action: load,
  });

  const status = {
    idle: "",
    checking: "Checking…",
    valid: dirty ? "Valid: review the changes, then apply." : "No changes: this is the spec the node runs.",
    invalid: "The node would refuse this spec: see the problems below.",
    toobig: `This text is ${mib(byteSize(textRef.current))}; a spec may be at most 1 MiB (${MAX_SPEC_BYTES.toLocaleString("en")} bytes). Nothing was sent.`,
    error: `Could not check the spec: ${check.message}`,
  }[check.state];

  if (loadError && !base) {
    return html`<div class="config-page"><${ErrorText} error=${loadError} />
      <button type="button" onClick=${load}>Try again</button></div>`;
  }

  return html`<div class="config-page">
    ${ask && html`<${Confirm} ask=${ask} onClose=${() => setAsk(null)} />`}

    <p class="lede muted">The node's spec, as a form and as YAML: both edit the same document.
      Applying rewrites <code>gate.yaml</code> and keeps its comments; keys hold only the
      names of environment variables, never a secret.</p>

    ${external && !conflict && html`<section class="banner warn-banner" role="alert" aria-labelledby="ext-title">
      <h2 id="ext-title">The spec changed while you were editing</h2>
      <p>Generation ${external.generation} was applied${external.origin && external.origin !== "unknown"
        ? ` (by ${external.origin})` : ""}. Your edits start from generation ${base?.generation}, so
        applying them now would be refused. Your edits are kept here until you choose.</p>
      <div class="row">
        <button type="button" onClick=${showTheirs} disabled=${busy === "theirs"}>Show their change</button>
        <button type="button" onClick=${askReload}>Reload</button>
      </div>
      ${theirs && html`<${TheirChange} theirs=${theirs} />`}
    </section>`}

    ${conflict && html`<section class="banner bad-banner" role="alert" aria-labelledby="conflict-title">
      <h2 id="conflict-title">Not applied: someone else changed the spec first</h2>
      <p>Your edit started from generation ${conflict.expected ?? base?.generation}; the node is now
        at generation ${conflict.current ?? "?"}. Nothing was written. Reload to start from theirs,
        or look at their change and redo yours on top of it.</p>
      <div class="row">
        <button type="button" onClick=${showTheirs} disabled=${busy === "theirs"}>Show their change</button>
        <button type="button" class="primary" onClick=${askReload}>Reload</button>
      </div>
      ${theirs && html`<${TheirChange} theirs=${theirs} />`}
    </section>`}

    ${result && html`<${ApplyResult} result=${result} onClose=${() => setResult(null)} />`}

    <div class="config-cols">
      <section class="card config-form" aria-labelledby="form-title">
        <header class="card-head"><h2 id="form-title">Settings</h2></header>
        <${SettingsForm} doc=${doc} disabled=${!!formNote || !doc} note=${formNote} onChange=${formChange} />
      </section>

      <section class="card config-yaml" aria-labelledby="yaml-title">
        <header class="card-head"><h2 id="yaml-title">YAML</h2>
          <span class="muted gen">${base ? `from generation ${base.generation}` : ""}${dirty ? " · edited" : ""}</span>
        </header>
        <p class=${"check " + check.state} role="status" aria-live="polite">${status}</p>
        ${editorKind === "textarea" && html`<p class="muted small-note">The full editor did not load; this is a plain text box.</p>`}
        ${tooBig !== null && html`<p class="error" role="alert">${tooBigMessage(tooBig)}</p>`}
        <div class="editor-host" ref=${hostRef}></div>
        <${IssueList} issues=${issues} onShow=${(line) => editor.current?.focusLine(line)} />
        <div class="row actions">
          <button type="button" class="primary" onClick=${reviewChanges}
            disabled=${!dirty || busy !== null || check.state === "invalid" || check.state === "toobig"}>
            ${busy === "review" ? "Comparing…" : "Review changes"}</button>
          <button type="button" onClick=${discard} disabled=${!dirty || busy !== null}>Discard edits</button>
        </div>
        <${ErrorText} error=${actionError} />
      </section>
    </div>

    ${review && html`<section class="card review" aria-labelledby="review-title">
      <header class="card-head"><h2 id="review-title" tabindex="-1">Review: what applying changes</h2></header>
      ${review.diff ? html`<${Diff} text=${review.diff} label="Changes to apply" />`
        : html`<p class="muted">No change: the node already runs this spec.</p>`}
      <div class="row">
        <button type="button" class="primary" onClick=${apply}
          disabled=${busy !== null || !review.diff || review.text !== text}>
          ${busy === "apply" ? "Applying…" : `Apply as generation ${(base?.generation ?? 0) + 1}`}</button>
        <button type="button" onClick=${() => setReview(null)}>Keep editing</button>
      </div>
    </section>`}

    <${Card} title="History" wide=${true}>
      <p class="muted">Every accepted spec. Rolling back re-applies an earlier one as a new generation.</p>
      <${History} entries=${hist.entries} error=${hist.error}
        onRollback=${askRollback} />
    <//>
  </div>`;
}
