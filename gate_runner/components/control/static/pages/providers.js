// The providers page (issue 12): the engines this node serves from, found or declared, with
// their health as last known (never waiting on a probe), a bounded test per provider, and
// add / edit / remove / discovery on-off, each as an edit of the spec through spec.apply.
import {
  ErrorText, Loading, call, html, stylesheet, useEffect, useRef, useRpc, useState, ago, ms,
} from "../ui/kit.js";

// kit.js resolves a relative href against its own URL (ui/), so hand it ours, absolute.
stylesheet(new URL("./providers.css", import.meta.url).pathname);

const KINDS = {
  ollama: { label: "Ollama", url: "http://127.0.0.1:11434" },
  openai: { label: "OpenAI-compatible (LM Studio, llama.cpp server, vLLM…)", url: "http://127.0.0.1:1234/v1" },
  llamacpp: { label: "GGUF file, served in-process (llama.cpp)" },
};
const KIND_NAMES = { ollama: "Ollama", openai: "OpenAI-compatible", llamacpp: "llama.cpp", peer: "peer" };
const HEALTH_WORDS = {
  Healthy: "Healthy", Degraded: "Degraded", Unhealthy: "Unreachable", Unknown: "Not checked yet",
};
const BREAKER_WORDS = {
  closed: "closed (sending requests)",
  open: "open (resting after failures)",
  "half-open": "half-open (trying one request)",
};
const SHOWN_MODELS = 8;

// --- the spec: read, edit a copy, apply with the generation it was read at ------------------

function providersOf(document) {
  return document?.spec?.providers ?? {};
}

// A copy of ``document`` whose spec.providers is changed by ``edit(providers)``; empty
// sections are dropped again so the file does not fill with `{}`.
function editProviders(document, edit) {
  const copy = structuredClone(document);
  copy.spec = copy.spec ?? {};
  const providers = (copy.spec.providers = copy.spec.providers ?? {});
  providers.static = [...(providers.static ?? [])];
  providers.discovery = { ...(providers.discovery ?? {}) };
  edit(providers);
  if (!providers.static.length) delete providers.static;
  if (!Object.keys(providers.discovery).length) delete providers.discovery;
  if (!Object.keys(providers).length) delete copy.spec.providers;
  return copy;
}

async function applyDocument(document, generation) {
  return call("spec.apply", {
    yaml: JSON.stringify(document),
    expectedGeneration: generation,
    source: "web UI (providers)",
    wait: false,
  });
}

// What went wrong with an apply, in words: a conflict says what happened and what to do; a
// spec error keeps the server's issues so the form can show each at its field.
function explain(error) {
  if (error.code === -32001) {
    return {
      text: "Someone changed the spec while you were editing it (from the CLI, gate.yaml or " +
        "another tab). Nothing was written: your form is kept, check it and save again.",
      conflict: true,
    };
  }
  const issues = error.data?.issues ?? [];
  if (issues.length) return { text: "Nothing was written: the node refused this change.", issues };
  return { text: error.message + (error.data?.hint ? ` (${error.data.hint})` : "") };
}

// --- the page -------------------------------------------------------------------------------

export default function Page() {
  const list = useRpc("providers.list", {}, { events: ["component.status", "spec.applied"] });
  const spec = useRpc("spec.get", {}, { events: ["spec.applied"] });
  const status = useRpc("node.status", {}, { events: ["component.status", "spec.applied"] });
  const [tested, setTested] = useState({}); // name -> the entry providers.test returned
  const [testing, setTesting] = useState({}); // name -> true while its probe runs
  const [form, setForm] = useState(null); // {mode: "add"|"edit", original, values, base}
  const [notice, setNotice] = useState(null);
  const opener = useRef(null);

  // A fresher listing wins over an older test result.
  useEffect(() => setTested({}), [list.data]);

  const document = spec.data?.document;
  const statics = providersOf(document).static ?? [];
  const discovery = providersOf(document).discovery ?? {};
  const rows = mergeRows({
    entries: (list.data ?? []).filter((e) => e.source !== "peer"),
    statics,
    tested,
    components: status.data?.components ?? [],
  });

  const test = async (name) => {
    setTesting((t) => ({ ...t, [name]: true }));
    try {
      const [entry] = await call("providers.test", { name });
      if (entry) setTested((t) => ({ ...t, [name]: entry }));
    } catch (error) {
      setTested((t) => ({ ...t, [name]: { ...(t[name] ?? {}), testError: error.message } }));
    } finally {
      setTesting((t) => { const next = { ...t }; delete next[name]; return next; });
    }
  };

  const openForm = (mode, original, event) => {
    opener.current = event?.currentTarget ?? null;
    setNotice(null);
    setForm({
      mode,
      original,
      values: valuesOf(original),
      base: { document: spec.data.document, generation: spec.data.generation },
    });
  };
  const closeForm = (message) => {
    setForm(null);
    if (message) setNotice(message);
    // Back to where the person was: the button that opened the form, when it still exists.
    setTimeout(() => {
      const back = opener.current?.isConnected ? opener.current : window.document.getElementById("providers-add");
      back?.focus();
    }, 0);
  };

  const remove = async (name) => {
    const got = await call("spec.get");
    const next = editProviders(got.document, (p) => {
      p.static = p.static.filter((s) => s.name !== name);
    });
    try {
      await applyDocument(next, got.generation);
      setNotice(`Removed ${name}. gate.yaml is updated.`);
    } catch (error) {
      setNotice({ error: explain(error).text });
    }
  };

  if (spec.error && !spec.data) return html`<${ErrorText} error=${spec.error} />`;
  const ready = list.data !== undefined && spec.data !== undefined;
  return html`<div class="providers">
    <${Discovery} discovery=${discovery} spec=${spec.data}
      found=${rows.filter((r) => r.source === "discovered").length} />
    ${form && html`<${ProviderForm} form=${form} setForm=${setForm} onDone=${closeForm} />`}
    <section class="card wide" aria-labelledby="providers-heading">
      <header class="card-head">
        <h2 id="providers-heading">Engines${ready ? ` (${rows.length})` : ""}</h2>
        <div class="row">
          <button type="button" id="providers-add" class="primary" disabled=${!spec.data || form}
            onClick=${(e) => openForm("add", null, e)}>Add provider</button>
        </div>
      </header>
      <div aria-live="polite">${notice && (notice.error
        ? html`<${ErrorText} error=${notice.error} />`
        : html`<p class="ok-text prov-notice">${notice}</p>`)}</div>
      ${list.error && html`<${ErrorText} error=${list.error} />`}
      ${!ready ? html`<${Loading} what="Reading the providers" />`
        : rows.length === 0 ? html`<${EmptyState} discovery=${discovery} adding=${!!form}
            onAdd=${(e) => openForm("add", null, e)} />`
        : html`<ul class="prov-list" role="list">${rows.map((row) => html`<${ProviderCard}
            key=${row.name} row=${row} testing=${!!testing[row.name]}
            onTest=${() => test(row.name)}
            onEdit=${(e) => openForm("edit", row.spec, e)}
            onAdopt=${(e) => openForm("add", adoptable(row), e)}
            onRemove=${() => remove(row.name)} editing=${!!form} />`)}</ul>`}
    </section>
  </div>`;
}

// One row per provider: what the registry knows (health, models, breaker), the static spec
// entry behind it, and for a declared provider that is not running, its component's word.
function mergeRows({ entries, statics, tested, components }) {
  const byName = new Map(entries.map((e) => [e.name, { ...e, ...(tested[e.name] ?? {}) }]));
  const rows = [];
  for (const s of statics) {
    const entry = byName.get(s.name);
    byName.delete(s.name);
    const component = components.find((c) => c.kind === "provider" && c.key === s.name);
    rows.push({
      ...(entry ?? { name: s.name, kind: s.kind, url: s.url ?? null, models: [], missing: true }),
      source: "static",
      spec: s,
      component,
    });
  }
  for (const entry of byName.values()) rows.push({ ...entry, source: entry.source });
  return rows;
}

function adoptable(row) {
  return { name: row.name, kind: row.kind, url: row.url ?? "" };
}

function EmptyState({ discovery, adding, onAdd }) {
  const off = discovery.enabled === false;
  return html`<div class="prov-empty">
    <p><strong>No engines found:</strong> start Ollama or LM Studio, or add one.</p>
    <p class="muted">${off
      ? "Discovery is off, so engines running on this machine are not looked for: turn it on above, or add one by hand."
      : "Gate looks for Ollama on port 11434 and LM Studio on port 1234 of this machine, and shows what answers here."}</p>
    ${!adding && html`<button type="button" class="primary" onClick=${onAdd}>Add a provider</button>`}
  </div>`;
}

// --- discovery on / off ---------------------------------------------------------------------

function Discovery({ discovery, spec, found }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const [wanted, setWanted] = useState(null); // the switch as clicked, until the spec says so
  const applied = discovery.enabled !== false;
  useEffect(() => setWanted(null), [applied]);
  const enabled = wanted ?? applied;
  const targets = discovery.targets?.length
    ? discovery.targets.map((t) => `${t.name} (${t.url})`).join(", ")
    : "Ollama on 127.0.0.1:11434 and LM Studio on 127.0.0.1:1234";
  const toggle = async (event) => {
    const on = event.currentTarget.checked;
    setBusy(true);
    setWanted(on);
    setError(null);
    try {
      const got = await call("spec.get");
      const next = editProviders(got.document, (p) => { p.discovery.enabled = on; });
      await applyDocument(next, got.generation);
    } catch (e) {
      setWanted(null);
      setError(explain(e).text);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="card wide prov-discovery" aria-labelledby="discovery-heading">
    <header class="card-head"><h2 id="discovery-heading">Discovery</h2></header>
    <div class="prov-switch-row">
      <label class="inline prov-switch">
        <input type="checkbox" role="switch" checked=${enabled} disabled=${busy || !spec}
          aria-describedby="discovery-help" onChange=${toggle} />
        <span>Find engines on this machine</span>
      </label>
      ${busy && html`<span class="spinner" aria-hidden="true"></span><span class="muted">Saving…</span>`}
    </div>
    <p id="discovery-help" class="muted prov-help">
      ${enabled
        ? `On: probes ${targets} every ${discovery.interval ?? "30s"}` +
          (found ? `, and found ${found} engine${found === 1 ? "" : "s"}.` : "; nothing answers yet.")
        : `Off: only the providers declared below are used.`}
    </p>
    <${ErrorText} error=${error} />
  </section>`;
}

// --- one provider ---------------------------------------------------------------------------

function healthOf(row) {
  if (row.missing) {
    const ready = row.component?.conditions?.find((c) => c.type === "Ready");
    return { state: "Unhealthy", word: "Not running", error: ready?.message || "starting…" };
  }
  const h = row.health ?? { state: "Unknown" };
  return { ...h, word: HEALTH_WORDS[h.state] ?? h.state };
}

function ProviderCard({ row, testing, onTest, onEdit, onAdopt, onRemove, editing }) {
  const [confirming, setConfirming] = useState(false);
  const [allModels, setAllModels] = useState(false);
  const health = healthOf(row);
  const tone = testing ? "unknown" : { Healthy: "ok", Degraded: "warn", Unknown: "unknown" }[health.state] ?? "bad";
  const models = row.models ?? [];
  const shown = allModels ? models : models.slice(0, SHOWN_MODELS);
  const id = `prov-${row.name}`;
  const scope = [
    row.spec?.models && `only ${row.spec.models.join(", ")}`,
    row.spec?.prefix && `listed as ${row.spec.prefix}<model>`,
  ].filter(Boolean);
  return html`<li class="prov" aria-labelledby=${id + "-name"} data-provider=${row.name}>
    <div class="prov-head">
      <div class="prov-title">
        <h3 id=${id + "-name"}>${row.name}</h3>
        <span class="tag">${KIND_NAMES[row.kind] ?? row.kind}</span>
        <span class=${"tag " + (row.source === "static" ? "tag-static" : "tag-found")}>
          ${row.source === "static" ? "declared" : "found"}</span>
      </div>
      <span class=${"health " + tone} data-health=${health.state}>
        ${testing ? html`<span class="spinner" aria-hidden="true"></span>` : html`<span class="health-dot" aria-hidden="true"></span>`}
        <span>${testing ? "Testing…" : health.word}</span>
      </span>
    </div>
    ${row.url && html`<p class="prov-url"><code>${row.url}</code></p>`}
    ${row.spec?.model && html`<p class="prov-url"><code>${row.spec.model}</code></p>`}
    <dl class="kv prov-facts">
      <dt>Latency</dt><dd>${health.latencyMs != null ? ms(health.latencyMs) : "–"}${
        row.requests && row.ewmaLatencyMs ? html` <span class="muted">· requests ${ms(row.ewmaLatencyMs)}</span>` : ""}</dd>
      <dt>Breaker</dt><dd>${row.breaker ? BREAKER_WORDS[row.breaker] ?? row.breaker : "–"}</dd>
      <dt>Requests</dt><dd>${row.requests ?? 0}${row.errors ? html`, <span class="bad-text">${row.errors} failed</span>` : ""}${
        row.outstanding ? `, ${row.outstanding} running` : ""}</dd>
      <dt>Checked</dt><dd>${health.checkedAt ? ago(health.checkedAt) : "not yet"}${
        health.version ? html` <span class="muted">· version ${health.version}</span>` : ""}</dd>
      ${scope.length > 0 && html`<dt>Offers</dt><dd>${scope.join("; ")}</dd>`}
    </dl>
    ${(health.error || row.testError) && html`<p class="prov-error">
      <span class="visually-hidden">Last error: </span>${row.testError ?? health.error}</p>`}
    <div class="prov-models">
      <h4 class="visually-hidden">Models of ${row.name}</h4>
      ${models.length === 0
        ? html`<p class="muted">${health.state === "Healthy" || health.state === "Degraded"
            ? (row.spec?.models ? "No model matches the allowlist." : "This engine has no models: pull or load one.")
            : "No models known yet."}</p>`
        : html`<ul class="chips" aria-label=${`Models of ${row.name}`}>
            ${shown.map((m) => html`<li key=${m}><code>${m}</code></li>`)}
            ${models.length > SHOWN_MODELS && html`<li><button type="button" class="small link"
              aria-expanded=${allModels} onClick=${() => setAllModels(!allModels)}>
              ${allModels ? "Show fewer" : `+${models.length - SHOWN_MODELS} more`}</button></li>`}
          </ul>`}
    </div>
    <div class="row prov-actions">
      ${confirming
        ? html`<span role="alert">Remove ${row.name} from gate.yaml?</span>
            <button type="button" class="small danger" onClick=${() => { setConfirming(false); onRemove(); }}>
              Yes, remove</button>
            <button type="button" class="small" onClick=${() => setConfirming(false)}>Keep it</button>`
        : html`
          ${!row.missing && html`<button type="button" class="small" disabled=${testing}
            aria-busy=${testing} onClick=${onTest}
            aria-label=${testing ? `Testing ${row.name}…` : `Test ${row.name}`}>
            ${testing ? "Testing…" : "Test"}</button>`}
          ${row.source === "static"
            ? html`<button type="button" class="small" disabled=${editing} onClick=${onEdit}
                  aria-label=${`Edit ${row.name}`}>Edit</button>
                <button type="button" class="small danger" disabled=${editing}
                  onClick=${() => setConfirming(true)} aria-label=${`Remove ${row.name}`}>Remove</button>`
            : html`<button type="button" class="small" disabled=${editing} onClick=${onAdopt}
                  aria-label=${`Declare ${row.name} in gate.yaml`}>Declare in gate.yaml</button>`}`}
    </div>
  </li>`;
}

// --- the add / edit form --------------------------------------------------------------------

const FIELDS = ["name", "kind", "url", "model", "apiKeyEnv", "timeout", "models", "prefix"];

function valuesOf(entry) {
  const e = entry ?? {};
  return {
    name: e.name ?? "",
    kind: e.kind ?? "ollama",
    url: e.url ?? "",
    model: e.model ?? "",
    apiKeyEnv: e.apiKeyEnv ?? "",
    timeout: e.timeout ?? "",
    models: (e.models ?? []).join(", "),
    prefix: e.prefix ?? "",
  };
}

// The spec entry the form stands for: fields a kind does not take are left out, blank
// optional fields too, and keys the form does not know (from a hand-edited file) are kept.
function entryOf(values, original) {
  const entry = { ...(original ?? {}) };
  for (const key of FIELDS) delete entry[key];
  entry.name = values.name.trim();
  entry.kind = values.kind;
  if (values.kind === "llamacpp") {
    if (values.model.trim()) entry.model = values.model.trim();
  } else {
    entry.url = values.url.trim();
    if (values.kind === "openai" && values.apiKeyEnv.trim()) entry.apiKeyEnv = values.apiKeyEnv.trim();
  }
  if (values.timeout.trim()) entry.timeout = values.timeout.trim();
  const globs = values.models.split(/[\s,]+/).filter(Boolean);
  if (globs.length) entry.models = globs;
  if (values.prefix.trim()) entry.prefix = values.prefix.trim();
  return entry;
}

// The server's issues for the entry at ``index``, by field; others stay general.
function issuesByField(issues, index) {
  const fields = {};
  const general = [];
  const at = new RegExp(`^spec\\.providers\\.static\\[${index}\\]\\.?([A-Za-z]+)?`);
  for (const issue of issues) {
    const m = at.exec(issue.path ?? "");
    if (m && m[1] && FIELDS.includes(m[1])) (fields[m[1]] ??= []).push(issue);
    else general.push(issue);
  }
  return { fields, general };
}

function ProviderForm({ form, setForm, onDone }) {
  const { mode, original, values, base } = form;
  const [saving, setSaving] = useState(false);
  const [problem, setProblem] = useState(null); // {text, fields, general, conflict}
  const first = useRef(null);
  useEffect(() => { first.current?.focus(); }, []);
  const set = (key) => (event) => {
    const value = event.currentTarget.value;
    setForm((f) => ({ ...f, values: { ...f.values, [key]: value } }));
  };
  const kind = values.kind;

  const save = async (event) => {
    event.preventDefault();
    setSaving(true);
    setProblem(null);
    const entry = entryOf(values, mode === "edit" ? original : null);
    let index = 0;
    const next = editProviders(base.document, (p) => {
      if (mode === "edit") {
        index = p.static.findIndex((s) => s.name === original.name);
        if (index < 0) index = p.static.length;
        p.static[index] = entry;
      } else {
        index = p.static.length;
        p.static.push(entry);
      }
    });
    try {
      await applyDocument(next, base.generation);
      onDone(mode === "edit"
        ? `Saved ${entry.name}. gate.yaml is updated.`
        : `Added ${entry.name}. gate.yaml is updated; its health shows below once it is checked.`);
    } catch (error) {
      const explained = explain(error);
      if (explained.conflict) {
        // Carry on from the spec as it is now; the person's values stay in the form.
        try {
          const got = await call("spec.get");
          setForm((f) => f && { ...f, base: { document: got.document, generation: got.generation } });
        } catch (again) {
          explained.text += ` (${again.message})`;
        }
      }
      const { fields, general } = issuesByField(explained.issues ?? [], index);
      setProblem({ ...explained, fields, general });
      setSaving(false);
    }
  };
  const cancel = () => onDone(null);
  const field = (key) => problem?.fields?.[key];
  const described = (key, help) => [help && `pf-${key}-help`, field(key) && `pf-${key}-error`].filter(Boolean).join(" ") || undefined;
  const fieldError = (key) => field(key) && html`<div id=${`pf-${key}-error`} class="field-error">
    ${field(key).map((issue) => html`<p><strong>${issue.message}</strong>${issue.hint && html`<br />
      <span class="fix">${issue.hint}</span>`}</p>`)}</div>`;

  return html`<section class="card wide prov-form-card" aria-labelledby="prov-form-heading"
      onKeyDown=${(e) => e.key === "Escape" && cancel()}>
    <header class="card-head"><h2 id="prov-form-heading">${mode === "edit" ? `Edit ${original.name}` : "Add a provider"}</h2></header>
    <form class="prov-form" noValidate onSubmit=${save}>
      ${problem && html`<div class="error" role="alert">
        <p>${problem.text}</p>
        ${problem.general?.length > 0 && html`<ul>${problem.general.map((issue) => html`<li>
          ${issue.path && html`<code>${issue.path}</code>: `}${issue.message}${issue.hint ? ` (${issue.hint})` : ""}</li>`)}</ul>`}
        ${problem.fields && Object.keys(problem.fields).length > 0 && html`<p>See the fields marked below.</p>`}
      </div>`}
      <div class="form-grid">
        <div class="field">
          <label for="pf-name">Name</label>
          <input id="pf-name" ref=${first} value=${values.name} onInput=${set("name")} autocomplete="off"
            spellcheck="false" aria-invalid=${!!field("name")} aria-describedby=${described("name", true)} />
          <p id="pf-name-help" class="help">Shown in X-Gate-Provider and the logs: lowercase letters, digits and '-'.</p>
          ${fieldError("name")}
        </div>
        <div class="field">
          <label for="pf-kind">Kind</label>
          <select id="pf-kind" value=${kind} onChange=${set("kind")} aria-invalid=${!!field("kind")}
            aria-describedby=${described("kind")}>
            ${Object.entries(KINDS).map(([k, v]) => html`<option value=${k}>${v.label}</option>`)}
          </select>
          ${fieldError("kind")}
        </div>
        ${kind === "llamacpp"
          ? html`<div class="field wide">
              <label for="pf-model">GGUF file</label>
              <input id="pf-model" value=${values.model} onInput=${set("model")} spellcheck="false"
                placeholder="~/models/qwen2.5-0.5b-instruct-q4_k_m.gguf"
                aria-invalid=${!!field("model")} aria-describedby=${described("model", true)} />
              <p id="pf-model-help" class="help">A path on this machine; needs the llamacpp extra.</p>
              ${fieldError("model")}
            </div>`
          : html`<div class="field wide">
              <label for="pf-url">Base URL</label>
              <input id="pf-url" value=${values.url} onInput=${set("url")} spellcheck="false"
                inputmode="url" placeholder=${KINDS[kind].url}
                aria-invalid=${!!field("url")} aria-describedby=${described("url", true)} />
              <p id="pf-url-help" class="help">${kind === "ollama"
                ? "Where Ollama listens, e.g. http://127.0.0.1:11434."
                : "The server's OpenAI base URL, usually ending in /v1, e.g. http://127.0.0.1:1234/v1."}</p>
              ${fieldError("url")}
            </div>`}
        ${kind === "openai" && html`<div class="field">
          <label for="pf-key">API key variable <span class="optional">(optional)</span></label>
          <input id="pf-key" value=${values.apiKeyEnv} onInput=${set("apiKeyEnv")} spellcheck="false"
            placeholder="OPENAI_API_KEY" aria-invalid=${!!field("apiKeyEnv")} aria-describedby=${described("apiKeyEnv", true)} />
          <p id="pf-apiKeyEnv-help" class="help">The name of the environment variable holding the key, never the key itself.</p>
          ${fieldError("apiKeyEnv")}
        </div>`}
        <div class="field">
          <label for="pf-models">Only these models <span class="optional">(optional)</span></label>
          <input id="pf-models" value=${values.models} onInput=${set("models")} spellcheck="false"
            placeholder="llama3*, qwen2:*" aria-invalid=${!!field("models")} aria-describedby=${described("models", true)} />
          <p id="pf-models-help" class="help">Globs, separated by commas. The others are neither listed nor routed, to you or to peers. Empty: all models.</p>
          ${fieldError("models")}
        </div>
        <div class="field">
          <label for="pf-prefix">Name prefix <span class="optional">(optional)</span></label>
          <input id="pf-prefix" value=${values.prefix} onInput=${set("prefix")} spellcheck="false"
            placeholder="home/" aria-invalid=${!!field("prefix")} aria-describedby=${described("prefix", true)} />
          <p id="pf-prefix-help" class="help">${values.prefix.trim()
            ? `Models are listed as ${values.prefix.trim()}llama3 and reach the engine as llama3.`
            : "e.g. home/: models are listed as home/llama3 and reach the engine as llama3."}</p>
          ${fieldError("prefix")}
        </div>
        <div class="field">
          <label for="pf-timeout">Longest silence <span class="optional">(optional)</span></label>
          <input id="pf-timeout" value=${values.timeout} onInput=${set("timeout")} spellcheck="false"
            placeholder=${kind === "ollama" ? "10m" : "60s"} aria-invalid=${!!field("timeout")}
            aria-describedby=${described("timeout", true)} />
          <p id="pf-timeout-help" class="help">How long the engine may send nothing before the request fails with 504.</p>
          ${fieldError("timeout")}
        </div>
      </div>
      <div class="row prov-form-actions">
        <button type="submit" class="primary" disabled=${saving} aria-busy=${saving}>
          ${saving ? "Saving…" : mode === "edit" ? "Save changes" : "Add provider"}</button>
        <button type="button" onClick=${cancel}>Cancel</button>
        ${saving && html`<span class="spinner" aria-hidden="true"></span>`}
        <span class="muted">Writes gate.yaml; the node applies it at once.</span>
      </div>
    </form>
  </section>`;
}
