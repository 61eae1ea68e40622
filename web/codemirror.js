// Entry of the one CodeMirror bundle the web UI ships (vendor/codemirror.js): the Config
// page's YAML editor. esbuild bundles this file and the packages it imports into a single
// minified ES module, so every CodeMirror package shares one copy of @codemirror/state
// (two copies break its `instanceof` checks). Export only what the UI uses: the bundle's
// size is what the page pays for.
//
// CSP: in a document, CodeMirror writes its styles into a <style> element, which the control
// plane's `style-src 'self'` blocks (the editor then shows unstyled, with console errors).
// Mount it in a shadow root, `new EditorView({ root: host.attachShadow({ mode: "open" }),
// parent })`, where it uses a constructed stylesheet that CSP allows (tests/web/pages/smoke.js
// does), or serve a per-response nonce and pass it with EditorView.cspNonce.of(nonce).
import { EditorState, Compartment } from "@codemirror/state";
import {
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  drawSelection,
} from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  HighlightStyle,
  syntaxHighlighting,
  indentOnInput,
  bracketMatching,
} from "@codemirror/language";
import {
  linter,
  lintGutter,
  lintKeymap,
  setDiagnostics,
  forceLinting,
  diagnosticCount,
} from "@codemirror/lint";
import { yaml } from "@codemirror/lang-yaml";
import { tags } from "@lezer/highlight";

// Token colours for each scheme, chosen for at least 4.5:1 contrast (WCAG AA) on the
// editor's default background of that scheme; axe checks this in tests/web.
const palettes = {
  light: {
    background: "#ffffff",
    foreground: "#1f2328",
    gutter: "#f6f8fa",
    gutterText: "#57606a",
    activeLine: "#f3f6fa",
    selection: "#b6d7ff",
    cursor: "#1f2328",
    key: "#0a3069",
    string: "#116329",
    comment: "#57606a",
    keyword: "#8250df",
    label: "#953800",
    type: "#cf222e",
  },
  dark: {
    background: "#0d1117",
    foreground: "#e6edf3",
    gutter: "#161b22",
    gutterText: "#8b949e",
    activeLine: "#161b22",
    selection: "#264f78",
    cursor: "#e6edf3",
    key: "#79c0ff",
    string: "#7ee787",
    comment: "#8b949e",
    keyword: "#d2a8ff",
    label: "#ffa657",
    type: "#ff7b72",
  },
};

function highlightFor(p) {
  return HighlightStyle.define([
    { tag: tags.definition(tags.propertyName), color: p.key },
    { tag: [tags.string, tags.special(tags.string)], color: p.string },
    { tag: tags.lineComment, color: p.comment, fontStyle: "italic" },
    { tag: [tags.keyword, tags.meta, tags.attributeValue], color: p.keyword },
    { tag: tags.labelName, color: p.label },
    { tag: tags.typeName, color: p.type },
  ]);
}

const highlights = { light: highlightFor(palettes.light), dark: highlightFor(palettes.dark) };

// The theme hook: `gateTheme({ dark })` gives the editor's look for one colour scheme. Put it
// in a Compartment so the UI can follow `prefers-color-scheme` without rebuilding the editor:
//   const theme = new Compartment();
//   ... extensions: [theme.of(gateTheme({ dark }))] ...
//   view.dispatch({ effects: theme.reconfigure(gateTheme({ dark: !dark })) });
// Each colour reads a CSS custom property first (--gate-editor-bg, --gate-editor-fg, ...), so
// the page's stylesheet can restyle the editor without touching this bundle.
export function gateTheme({ dark = false } = {}) {
  const p = dark ? palettes.dark : palettes.light;
  const v = (name, fallback) => `var(--gate-editor-${name}, ${fallback})`;
  return [
    EditorView.theme(
      {
        "&": {
          color: v("fg", p.foreground),
          backgroundColor: v("bg", p.background),
        },
        ".cm-content": { caretColor: v("cursor", p.cursor) },
        ".cm-cursor, .cm-dropCursor": { borderLeftColor: v("cursor", p.cursor) },
        "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection":
          { backgroundColor: v("selection", p.selection) },
        ".cm-activeLine": { backgroundColor: v("active-line", p.activeLine) },
        ".cm-gutters": {
          backgroundColor: v("gutter", p.gutter),
          color: v("gutter-fg", p.gutterText),
          border: "none",
        },
        ".cm-activeLineGutter": { backgroundColor: v("active-line", p.activeLine) },
      },
      { dark },
    ),
    syntaxHighlighting(dark ? highlights.dark : highlights.light),
  ];
}

// What the Config page's editor always has: line numbers, history, the lint gutter and the
// keymaps. Add yaml(), a linter(...) and gateTheme(...) beside it.
export function editorSetup() {
  return [
    lineNumbers(),
    highlightActiveLineGutter(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    highlightActiveLine(),
    lintGutter(),
    keymap.of([...defaultKeymap, ...historyKeymap, ...lintKeymap, indentWithTab]),
  ];
}

export {
  EditorState,
  Compartment,
  EditorView,
  keymap,
  lineNumbers,
  highlightActiveLine,
  highlightActiveLineGutter,
  drawSelection,
  defaultKeymap,
  history,
  historyKeymap,
  indentWithTab,
  syntaxHighlighting,
  indentOnInput,
  bracketMatching,
  linter,
  lintGutter,
  lintKeymap,
  setDiagnostics,
  forceLinting,
  diagnosticCount,
  yaml,
};
