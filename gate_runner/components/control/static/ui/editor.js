// The YAML side of the config page: a CodeMirror 6 editor (the vendored bundle) mounted in a
// shadow root, with a plain <textarea> when that bundle does not load; plus the two YAML
// pieces the form needs, since no YAML library ships: a reader of the spec's plain shapes
// (built on CodeMirror's own YAML grammar) and an emitter in PyYAML's block style, so that
// a form edit reads like the text `spec.get` returned.

// -- scalars, as PyYAML (YAML 1.1) resolves them ------------------------------------------
const NULL_RE = /^(?:~|null|Null|NULL|)$/;
const BOOL_RE = /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/;
const INT_RE = /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/;
const FLOAT_RE = /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/;
const DATE_RE = /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/;

class Unreadable extends Error {}

function plainScalar(text) {
  if (NULL_RE.test(text)) return null;
  if (BOOL_RE.test(text)) return /^(?:yes|true|on)$/i.test(text);
  if (/^[-+]?(?:0|[1-9][0-9]*)$/.test(text)) return Number(text);
  if (/^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?$/.test(text)) return Number(text);
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (INT_RE.test(text) || FLOAT_RE.test(text) || DATE_RE.test(text)) {
    // Octal, hex, sexagesimal, underscores, timestamps: legal, but never in a spec.
    throw new Unreadable(`the form cannot read the value ${text}`);
  }
  return text;
}

// -- emitting --------------------------------------------------------------------------------
const INDICATOR_START = /^(?:[,[\]{}#&*!|>'"%@`\s]|[-?:](?:\s|$))/;

function needsQuotes(s) {
  return NULL_RE.test(s) || BOOL_RE.test(s) || INT_RE.test(s) || FLOAT_RE.test(s)
    || DATE_RE.test(s) || s === "<<" || s === "=" || INDICATOR_START.test(s) || /\s$/.test(s)
    || s.includes(": ") || s.includes(" #") || s.endsWith(":");
}

function scalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (Number.isNaN(value)) return ".nan";
    if (!Number.isFinite(value)) return value > 0 ? ".inf" : "-.inf";
    const text = String(value);
    // YAML 1.1 reads 1e+21 as a string: a float needs its dot.
    return text.includes("e") && !text.includes(".") ? text.replace("e", ".0e") : text;
  }
  const s = String(value);
  // Control characters, line breaks and non-BMP-unsafe text: a JSON string is a valid YAML
  // double-quoted scalar.
  if (/[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]/.test(s)) return JSON.stringify(s);
  return needsQuotes(s) ? `'${s.replaceAll("'", "''")}'` : s;
}

function isMap(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }

function emitInto(lines, value, indent) {
  const pad = " ".repeat(indent);
  if (isMap(value)) {
    for (const [key, v] of Object.entries(value)) {
      const k = scalar(String(key));
      if (isMap(v) && Object.keys(v).length) {
        lines.push(`${pad}${k}:`);
        emitInto(lines, v, indent + 2);
      } else if (Array.isArray(v) && v.length) {
        lines.push(`${pad}${k}:`);
        emitInto(lines, v, indent); // PyYAML's indentless sequences
      } else {
        lines.push(`${pad}${k}: ${inline(v)}`);
      }
    }
  } else if (Array.isArray(value)) {
    for (const item of value) {
      if ((isMap(item) && Object.keys(item).length) || (Array.isArray(item) && item.length)) {
        const inner = [];
        emitInto(inner, item, indent + 2);
        inner[0] = `${pad}- ${inner[0].slice(indent + 2)}`;
        lines.push(...inner);
      } else {
        lines.push(`${pad}- ${inline(item)}`);
      }
    }
  } else {
    lines.push(pad + scalar(value));
  }
}

function inline(v) {
  if (isMap(v)) return "{}";
  if (Array.isArray(v)) return "[]";
  return scalar(v);
}

// A document of maps, lists and scalars as block YAML, in the layout of the node's own
// rendering (spec/write.py canonical_yaml), so a form edit changes only the lines it touched.
export function emitYaml(document) {
  const lines = [];
  emitInto(lines, document, 0);
  return lines.join("\n") + "\n";
}

// -- reading ---------------------------------------------------------------------------------
// Line folding of flow scalars: one line break is a space, each empty line a newline.
function fold(raw) {
  const parts = raw.split("\n").map((l) => l.trim());
  let out = parts[0];
  let empty = 0;
  for (const part of parts.slice(1)) {
    if (!part) { empty++; continue; }
    out += empty ? "\n".repeat(empty) : " ";
    out += part;
    empty = 0;
  }
  return out + "\n".repeat(empty);
}

function readNode(node, text) {
  const children = [];
  for (let c = node.firstChild; c; c = c.nextSibling) {
    if (c.type.isError || c.name === "⚠") throw new Unreadable("the YAML has a syntax error");
    if (c.name !== "Comment") children.push(c);
  }
  switch (node.name) {
    case "BlockMapping":
    case "FlowMapping": {
      const out = {};
      for (const pair of children) {
        if (pair.name !== "Pair") {
          if ("{},".includes(pair.name)) continue;
          throw new Unreadable(`the form cannot read a ${pair.name} here`);
        }
        const parts = [];
        for (let c = pair.firstChild; c; c = c.nextSibling) if (c.name !== "Comment") parts.push(c);
        const keyNode = parts.find((p) => p.name === "Key");
        if (!keyNode?.firstChild) throw new Unreadable("a key is missing");
        const key = String(readNode(keyNode.firstChild, text) ?? "null");
        if (Object.hasOwn(out, key)) throw new Unreadable(`the key ${key} appears twice`);
        const valueNode = parts.find((p) => p !== keyNode && p.name !== ":");
        out[key] = valueNode ? readNode(valueNode, text) : null;
      }
      return out;
    }
    case "BlockSequence":
    case "FlowSequence":
      return children.filter((c) => c.name === "Item").map((item) => {
        const inner = [];
        for (let c = item.firstChild; c; c = c.nextSibling) if (c.name !== "Comment") inner.push(c);
        return inner.length ? readNode(inner[0], text) : null;
      });
    case "Literal":
      return plainScalar(fold(text.slice(node.from, node.to)));
    case "QuotedLiteral": {
      const raw = text.slice(node.from, node.to);
      const folded = fold(raw);
      if (raw.startsWith("'")) return folded.slice(1, -1).replaceAll("''", "'");
      try { return JSON.parse(folded); } catch { throw new Unreadable(`the form cannot read ${raw}`); }
    }
    case "BlockLiteral": {
      const header = children.find((c) => c.name === "BlockLiteralHeader");
      const content = children.find((c) => c.name === "BlockLiteralContent");
      const h = header ? text.slice(header.from, header.to) : "|";
      const body = content ? text.slice(content.from, content.to) : "";
      const lines = body.split("\n");
      const indent = Math.min(...lines.filter((l) => l.trim()).map((l) => l.match(/^ */)[0].length));
      const stripped = lines.map((l) => l.slice(Number.isFinite(indent) ? indent : 0));
      let value = h.startsWith(">") ? stripped.join(" ") : stripped.join("\n");
      if (!h.includes("-")) value += "\n";
      return value;
    }
    case "Key":
    case "Item":
      return children.length ? readNode(children[0], text) : null;
    default:
      // Anchors, aliases and tags: the server reads them, the form leaves them to the YAML.
      throw new Unreadable(`the form cannot read ${node.name} nodes: edit this spec as YAML`);
  }
}

// parse(text) -> the document, or throws an Error saying why the form cannot follow it.
export function yamlReader(cm) {
  const parser = cm.yaml().language.parser;
  return (text) => {
    const tree = parser.parse(text);
    const documents = [];
    for (let c = tree.topNode.firstChild; c; c = c.nextSibling) {
      if (c.type.isError) throw new Unreadable("the YAML has a syntax error");
      if (c.name === "Document") documents.push(c);
    }
    if (documents.length !== 1) throw new Unreadable("the spec must be one YAML document");
    const content = [];
    for (let c = documents[0].firstChild; c; c = c.nextSibling) {
      if (c.type.isError) throw new Unreadable("the YAML has a syntax error");
      if (!["Comment", "DirectiveEnd", "DocEnd"].includes(c.name)) content.push(c);
    }
    if (content.length !== 1) throw new Unreadable("the spec must be one mapping");
    return readNode(content[0], text);
  };
}

// -- the editor ------------------------------------------------------------------------------
let cmModule = null;
export async function loadCodeMirror() {
  if (!cmModule) cmModule = import("codemirror");
  return cmModule;
}

function issueDiagnostics(doc, issues) {
  return issues.map((issue) => {
    const lineNo = Math.min(Math.max(issue.line ?? 1, 1), doc.lines);
    const line = doc.line(lineNo);
    const from = Math.min(line.from + Math.max((issue.column ?? 1) - 1, 0), line.to);
    const where = issue.path ? `${issue.path}: ` : "";
    return {
      from, to: Math.max(from, line.to), severity: "error",
      message: `${where}${issue.message}${issue.hint ? ` (${issue.hint})` : ""}`,
    };
  });
}

// Mounts an editor into `host` and returns { kind, getText, setText, setIssues, focus,
// destroy }. `onChange(text)` runs on every user edit; an edit that would make the text
// longer than `maxBytes` is refused whole and `onTooBig(bytes)` says so.
export async function mountEditor(host, { text, label, maxBytes, onChange, onTooBig }) {
  let cm;
  try {
    cm = await loadCodeMirror();
  } catch {
    return mountTextarea(host, { text, label, maxBytes, onChange, onTooBig });
  }
  // CodeMirror injects its styles as <style> elements in a document, which `style-src 'self'`
  // blocks; in a shadow root it adopts constructable stylesheets instead, which CSP allows.
  const shadow = host.shadowRoot ?? host.attachShadow({ mode: "open" });
  const parent = document.createElement("div");
  parent.className = "cm-host";
  parent.style.height = "100%"; // CSSOM, which CSP allows; the page's CSS stops at the shadow root
  shadow.replaceChildren(parent);
  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const theme = new cm.Compartment();
  const encoder = new TextEncoder();
  let quiet = false; // set while the page itself replaces the text (a form edit, a reload)
  const view = new cm.EditorView({
    root: shadow,
    parent,
    state: cm.EditorState.create({
      doc: text,
      extensions: [
        cm.editorSetup(),
        cm.yaml(),
        theme.of(cm.gateTheme({ dark: dark.matches })),
        cm.EditorView.lineWrapping,
        cm.EditorView.contentAttributes.of({ "aria-label": label }),
        cm.EditorView.theme({
          "&": { height: "100%", fontSize: "0.9rem" },
          ".cm-scroller": { overflow: "auto", fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" },
          ".cm-tooltip-lint": { maxWidth: "32rem" },
        }),
        cm.EditorState.transactionFilter.of((tr) => {
          if (!tr.docChanged || tr.newDoc.length <= maxBytes / 4) return tr;
          const bytes = encoder.encode(tr.newDoc.toString()).length;
          if (bytes <= maxBytes) return tr;
          onTooBig(bytes);
          return [];
        }),
        cm.EditorView.updateListener.of((update) => {
          if (update.docChanged && !quiet) onChange(update.state.doc.toString());
        }),
      ],
    }),
  });
  const follow = () => view.dispatch({ effects: theme.reconfigure(cm.gateTheme({ dark: dark.matches })) });
  dark.addEventListener("change", follow);
  return {
    kind: "codemirror",
    getText: () => view.state.doc.toString(),
    setText(next) {
      if (next === view.state.doc.toString()) return;
      quiet = true;
      try {
        view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } });
      } finally {
        quiet = false;
      }
    },
    setIssues(issues) {
      view.dispatch(cm.setDiagnostics(view.state, issueDiagnostics(view.state.doc, issues)));
    },
    focusLine(line) {
      const l = view.state.doc.line(Math.min(Math.max(line, 1), view.state.doc.lines));
      view.dispatch({ selection: { anchor: l.from }, scrollIntoView: true });
      view.focus();
    },
    destroy() { dark.removeEventListener("change", follow); view.destroy(); },
  };
}

function mountTextarea(host, { text, label, maxBytes, onChange, onTooBig }) {
  const area = document.createElement("textarea");
  area.className = "yaml-fallback";
  area.spellcheck = false;
  area.value = text;
  area.setAttribute("aria-label", label);
  let last = text;
  const encoder = new TextEncoder();
  area.addEventListener("input", () => {
    const bytes = encoder.encode(area.value).length;
    if (bytes > maxBytes) { area.value = last; onTooBig(bytes); return; }
    last = area.value;
    onChange(area.value);
  });
  host.replaceChildren(area);
  return {
    kind: "textarea",
    getText: () => area.value,
    setText(next) { area.value = next; last = next; },
    setIssues() {},
    focusLine(line) {
      const lines = area.value.split("\n");
      const at = lines.slice(0, Math.max(line - 1, 0)).reduce((n, l) => n + l.length + 1, 0);
      area.focus();
      area.setSelectionRange(at, at);
    },
    destroy() { area.remove(); },
  };
}
