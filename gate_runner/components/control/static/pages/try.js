// Try it (issue 12): a chat that streams a reply from any model this node reaches, local or
// on a peer (model@peer), through the node's real API path: the control server hands
// /v1/... to the node's API app in process (control/app.py), so the request takes the same
// router, limits and request log as one on the API port. Below it, "connect your app":
// the API's base URL and snippets to copy for curl, Python and JavaScript.
import { Card, CopyButton, ErrorText, html, live, ms, stylesheet, useEffect, useRef, useRpc,
         useState } from "../ui/kit.js";

// kit.stylesheet resolves a relative href against kit.js (ui/), so pass this module's URL.
stylesheet(new URL("./try.css", import.meta.url).href);

const WILDCARDS = new Set(["0.0.0.0", "::", "[::]"]);

// GET /v1/models through the control server: [{value, label}] for the model picker.
async function readModels() {
  const response = await fetch("/v1/models", { credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(errorWords(response, body));
  const models = (body.data || []).map((m) => {
    const gate = m.gate || {};
    const remote = gate.local === false && gate.node_name;
    return {
      value: m.id,
      label: remote ? `${m.id} (on ${gate.node_name})` : m.id,
      where: remote ? `on peer ${gate.node_name}` : `local, ${(gate.providers || [gate.provider]).join(", ")}`,
    };
  });
  return { models, message: body.gate?.message || null };
}

// What went wrong, in words: the API's own message (OpenAI-shaped) and what to do.
function errorWords(response, body) {
  const error = body?.error;
  const message = typeof error === "string" ? error : error?.message;
  const hint = error?.hint || body?.hint;
  const said = message ? message + (hint ? ` (${hint})` : "") : null;
  switch (response.status) {
    case 401:
    case 403:
      if (typeof error === "string" || !error?.type) {
        window.dispatchEvent(new CustomEvent("gate:logged-out"));
        return "Your session has ended: run `gate ui` for a new link.";
      }
      return said || "The node refused this request.";
    case 404:
      return said || "No such model on this node or its peers: pick one from the list.";
    case 429: {
      const wait = response.headers.get("retry-after");
      return `Too many requests${wait ? `: try again in ${wait} s` : ""}. ${said || ""}`.trim();
    }
    case 503:
      return `No engine could take it right now. ${said || "Start an engine (Ollama, LM Studio, llama.cpp) or check Providers."}`;
    default:
      return said || `The node answered ${response.status} ${response.statusText}.`;
  }
}

function sentence(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

// The SSE stream of a chat completion, chunk by chunk: calls onDelta(text) as each arrives.
async function streamChat({ model, messages, maxTokens, signal, onDelta, onHead }) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", accept: "text/event-stream" },
    body: JSON.stringify({ model, messages, stream: true, max_tokens: maxTokens,
                           stream_options: { include_usage: true } }),
    signal,
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(errorWords(response, body));
  }
  onHead({
    requestId: response.headers.get("x-request-id"),
    node: response.headers.get("x-gate-node"),
    provider: response.headers.get("x-gate-provider"),
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let usage = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return usage;
      let chunk;
      try { chunk = JSON.parse(data); } catch { continue; }
      if (chunk.error) throw new Error(chunk.error.message || String(chunk.error));
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta;
      const text = (delta?.content || "") + "";
      if (text) onDelta(text);
    }
  }
  return usage;
}

function Message({ message }) {
  const who = message.role === "user" ? "You" : message.model || "Model";
  return html`<li class=${"msg " + message.role + (message.error ? " failed" : "")}>
    <p class="who">${who}${message.meta && html` <span class="muted meta">${message.meta}</span>`}</p>
    ${message.content && html`<div class="text">${message.content}</div>`}
    ${message.streaming && !message.content && html`<p class="muted" aria-busy="true">Waiting for the first token…</p>`}
    ${message.stopped && html`<p class="muted">Stopped.</p>`}
    ${message.error && html`<p class="error">${message.error}</p>`}
  </li>`;
}

function Chat({ models, onModel }) {
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [maxTokens, setMaxTokens] = useState("256");
  const [messages, setMessages] = useState([]);
  const [busy, setBusy] = useState(false);
  const abort = useRef(null);
  const log = useRef(null);
  useEffect(() => {
    if (!model && models.data?.models.length) {
      setModel(models.data.models[0].value);
      onModel(models.data.models[0].value);
    }
  }, [models.data]);
  useEffect(() => () => abort.current?.abort(), []); // leaving the page stops a stream
  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages]);
  const update = (fn) => setMessages((list) => [...list.slice(0, -1), fn(list[list.length - 1])]);
  const send = async (event) => {
    event?.preventDefault();
    const text = prompt.trim();
    if (!text || busy) return;
    if (!model.trim()) {
      setMessages((list) => [...list, { role: "assistant", error: "Pick a model first." }]);
      return;
    }
    const history = [...messages.filter((m) => !m.error && m.content), { role: "user", content: text }];
    const began = performance.now();
    let first = null;
    let pieces = 0;
    setMessages([...history, { role: "assistant", model: model.trim(), content: "", streaming: true }]);
    setPrompt("");
    setBusy(true);
    const controller = new AbortController();
    abort.current = controller;
    let head = {};
    try {
      const usage = await streamChat({
        model: model.trim(),
        messages: history.map(({ role, content }) => ({ role, content })),
        maxTokens: Math.max(1, parseInt(maxTokens, 10) || 256),
        signal: controller.signal,
        onHead: (h) => { head = h; },
        onDelta: (piece) => {
          if (first === null) first = performance.now() - began;
          pieces++;
          update((m) => ({ ...m, content: m.content + piece }));
        },
      });
      const total = performance.now() - began;
      const tokens = usage?.completion_tokens ?? pieces;
      const rate = total > (first ?? 0) && tokens > 1 ? ` · ${(tokens / ((total - (first ?? 0)) / 1000)).toFixed(1)} tokens/s` : "";
      const where = head.node ? ` · via ${head.node}${head.provider ? ` / ${head.provider}` : ""}` : "";
      update((m) => ({ ...m, streaming: false,
        meta: `${tokens} tokens · first token ${ms(first)} · ${ms(total)}${rate}${where}` }));
    } catch (e) {
      if (controller.signal.aborted) update((m) => ({ ...m, streaming: false, stopped: true }));
      else update((m) => ({ ...m, streaming: false, error: sentence(e.message || String(e)) }));
    } finally {
      abort.current = null;
      setBusy(false);
    }
  };
  const stop = () => abort.current?.abort();
  const onKey = (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  };
  const list = models.data?.models || [];
  const picked = list.find((m) => m.value === model);
  const actions = html`<button type="button" class="small" disabled=${busy || !messages.length}
    onClick=${() => setMessages([])}>Clear</button>`;
  return html`<${Card} title="Chat" actions=${actions} wide>
    <div class="chat-settings">
      <div class="field model-field">
        <label for="try-model">Model</label>
        <input id="try-model" list="try-models" value=${model} autocomplete="off" spellcheck="false"
          placeholder=${list.length ? "pick or type, e.g. llama3.2@alice" : "no models yet"}
          aria-describedby="try-model-note"
          onInput=${(e) => { setModel(e.currentTarget.value); onModel(e.currentTarget.value); }} />
        <datalist id="try-models">${list.map((m) => html`<option value=${m.value}>${m.label}</option>`)}</datalist>
        <p id="try-model-note" class="muted note-line">${
          models.loading && !models.data ? "Reading the models this node reaches…"
          : picked ? picked.where
          : list.length ? `${list.length} ${list.length === 1 ? "model" : "models"} reachable; add @peer to ask a given peer.`
          : ""}</p>
      </div>
      <div class="field tokens-field">
        <label for="try-max">Max tokens</label>
        <input id="try-max" type="number" min="1" max="32768" step="1" inputmode="numeric" value=${maxTokens}
          onInput=${(e) => setMaxTokens(e.currentTarget.value)} />
      </div>
    </div>
    <${ErrorText} error=${models.error} />
    ${models.data && !list.length && html`<p class="empty">${models.data.message || "No models yet: start Ollama or LM Studio, add an engine on Providers, or pair with a friend on Peers."}</p>`}
    <ol class="transcript" ref=${log} aria-live="polite" aria-busy=${busy ? "true" : "false"}
        aria-label="Conversation" tabindex="0">
      ${messages.length ? messages.map((m, i) => html`<${Message} key=${i} message=${m} />`)
        : html`<li class="muted hint-line">Replies stream here as the model writes them. Enter sends; Shift+Enter starts a new line.</li>`}
    </ol>
    <form class="composer" onSubmit=${send}>
      <label for="try-prompt" class="visually-hidden">Message</label>
      <textarea id="try-prompt" rows="3" placeholder="Ask something…" value=${prompt}
        onInput=${(e) => setPrompt(e.currentTarget.value)} onKeyDown=${onKey}></textarea>
      <div class="row composer-actions">
        ${busy
          ? html`<button type="button" class="danger" onClick=${stop}>Stop</button>`
          : html`<button type="submit" class="primary" disabled=${!prompt.trim()}>Send</button>`}
      </div>
    </form>
  <//>`;
}

// -- connect your app --------------------------------------------------------------------

function apiAddress(status, spec) {
  const api = status?.components?.find((c) => c.kind === "api");
  const ready = api?.conditions?.find((c) => c.type === "Ready" && c.status);
  let address = ready?.message || spec?.document?.spec?.listen?.api || null;
  if (!address) return null;
  const cut = address.lastIndexOf(":");
  let host = address.slice(0, cut);
  const port = address.slice(cut + 1);
  if (WILDCARDS.has(host)) host = "127.0.0.1";
  if (host.includes(":") && !host.startsWith("[")) host = `[${host}]`;
  return `http://${host}:${port}/v1`;
}

export function snippets(base, model, keyEnv) {
  const m = model || "MODEL";
  const q = JSON.stringify;
  const curlAuth = keyEnv ? ` \\\n  -H "Authorization: Bearer $${keyEnv}"` : "";
  const pyKey = keyEnv ? `os.environ[${q(keyEnv)}]` : `"unused"  # this node asks for no key`;
  const jsKey = keyEnv ? `process.env.${keyEnv}` : `"unused" // this node asks for no key`;
  return [
    { name: "curl", lang: "shell", text:
`curl ${base}/chat/completions \\
  -H "Content-Type: application/json"${curlAuth} \\
  -d '{
    "model": ${q(m)},
    "messages": [{"role": "user", "content": "Hello!"}],
    "stream": true
  }'` },
    { name: "Python", lang: "python", text:
`${keyEnv ? "import os\n" : ""}from openai import OpenAI

client = OpenAI(base_url=${q(base)}, api_key=${pyKey})
stream = client.chat.completions.create(
    model=${q(m)},
    messages=[{"role": "user", "content": "Hello!"}],
    stream=True,
)
for chunk in stream:
    print(chunk.choices[0].delta.content or "", end="", flush=True)` },
    { name: "JavaScript", lang: "javascript", text:
`import OpenAI from "openai";

const client = new OpenAI({ baseURL: ${q(base)}, apiKey: ${jsKey} });
const stream = await client.chat.completions.create({
  model: ${q(m)},
  messages: [{ role: "user", content: "Hello!" }],
  stream: true,
});
for await (const chunk of stream) {
  process.stdout.write(chunk.choices[0]?.delta?.content ?? "");
}` },
  ];
}

function Connect({ model }) {
  const status = useRpc("node.status", {}, { events: ["spec.applied", "component.status"] });
  const spec = useRpc("spec.get", {}, { events: ["spec.applied"] });
  const base = apiAddress(status.data, spec.data);
  const keys = spec.data?.document?.spec?.listen?.apiKeys || [];
  const keyEnv = keys[0] || null;
  const [tab, setTab] = useState(0);
  const list = base ? snippets(base, model, keyEnv) : [];
  const onTabKey = (e) => {
    const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    const next = (tab + step + list.length) % list.length;
    setTab(next);
    document.getElementById(`snippet-tab-${next}`)?.focus();
  };
  return html`<${Card} title="Connect your app" wide>
    <${ErrorText} error=${status.error || spec.error} />
    ${!base ? html`<p class="muted">${status.loading ? "Reading the API's address…" : "The API is not listening: see its component on the Dashboard."}</p>`
      : html`
      <p class="muted">Any OpenAI-compatible app or library can use this node: point it at this base URL${keyEnv ? html`, with the key from <code>${keyEnv}</code> (spec.listen.apiKeys)` : ""}. The Python and JavaScript snippets use the <code>openai</code> package (<code>pip install openai</code>, <code>npm install openai</code>).</p>
      <div class="base-url">
        <label for="try-base">Base URL</label>
        <div class="row">
          <input id="try-base" class="mono" readonly value=${base} onFocus=${(e) => e.currentTarget.select()} />
          <${CopyButton} text=${base} label="Copy base URL" />
        </div>
      </div>
      <div class="snippets">
        <div role="tablist" aria-label="Snippets" class="snippet-tabs">
          ${list.map((s, i) => html`<button type="button" role="tab" id=${`snippet-tab-${i}`}
            aria-selected=${i === tab ? "true" : "false"} aria-controls=${`snippet-${i}`}
            tabindex=${i === tab ? 0 : -1} onClick=${() => setTab(i)} onKeyDown=${onTabKey}>${s.name}</button>`)}
        </div>
        ${list.map((s, i) => html`<div role="tabpanel" id=${`snippet-${i}`} aria-labelledby=${`snippet-tab-${i}`}
            class="snippet" hidden=${i !== tab}>
          <div class="snippet-head"><${CopyButton} text=${s.text} label=${`Copy ${s.name}`} /></div>
          <pre tabindex="0" data-lang=${s.lang}><code>${s.text}</code></pre>
        </div>`)}
      </div>`}
  <//>`;
}

export default function Page() {
  const [models, setModels] = useState({ data: null, error: null, loading: true });
  const [model, setModel] = useState("");
  useEffect(() => {
    let alive = true;
    const load = () => readModels().then(
      (data) => alive && setModels({ data, error: null, loading: false }),
      (error) => alive && setModels((s) => ({ ...s, error: error.message, loading: false })),
    );
    // The models change when an engine or a peer comes or goes: re-read on those events
    // (once per burst), and on every (re)connect of the live socket.
    let timer = null;
    const soon = () => {
      if (timer === null) timer = setTimeout(() => { timer = null; load(); }, 500);
    };
    load();
    const offs = [live.on("connected", load),
                  ...["component.status", "peer.connected", "peer.disconnected", "spec.applied"]
                    .map((type) => live.on(type, soon))];
    return () => { alive = false; clearTimeout(timer); offs.forEach((off) => off()); };
  }, []);
  return html`<div class="try-page">
    <${Chat} models=${models} onModel=${setModel} />
    <${Connect} model=${model} />
  </div>`;
}
