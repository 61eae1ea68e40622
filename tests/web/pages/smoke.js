// The smoke page: each vendored module in use, as the web UI will use it. tests/web/test_rig.py
// checks what this renders; `document.body.dataset.ready` says when everything has mounted.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { html } from "htm/preact";
import uPlot from "uplot";
import {
  Compartment,
  EditorState,
  EditorView,
  editorSetup,
  gateTheme,
  setDiagnostics,
  yaml,
} from "codemirror";
import { encode } from "uqr";

const SPEC = `apiVersion: gate.hellas.ai/v1
kind: Node
metadata:
  name: alice-laptop # the node's name
listen:
  api: 127.0.0.1:31145
  control: 127.0.0.1:8145
providers:
  - name: local
    type: openai
    url: http://127.0.0.1:8080/v1
`;

const dark = window.matchMedia("(prefers-color-scheme: dark)");

function Counter() {
  const [count, setCount] = useState(0);
  return html`<button type="button" id="counter" onClick=${() => setCount(count + 1)}>
    Clicked ${count} ${count === 1 ? "time" : "times"}
  </button>`;
}

function Chart() {
  const ref = useRef(null);
  useEffect(() => {
    const now = 1_764_000_000;
    const xs = Array.from({ length: 60 }, (_, i) => now + i);
    const ys = xs.map((_, i) => 5 + 4 * Math.sin(i / 6));
    // uPlot draws axes on a canvas, which CSS does not reach: read the page's colours at
    // each draw, and redraw when the scheme changes.
    const ink = () => getComputedStyle(document.body).color;
    const grid = { stroke: () => getComputedStyle(document.body).getPropertyValue("--border") };
    const plot = new uPlot(
      {
        width: ref.current.clientWidth || 600,
        height: 200,
        series: [{}, { label: "requests/s", stroke: "#0969da", width: 2 }],
        axes: [
          { stroke: ink, grid, ticks: grid },
          { stroke: ink, grid, ticks: grid },
        ],
      },
      [xs, ys],
      ref.current,
    );
    const resize = () => plot.setSize({ width: ref.current.clientWidth, height: 200 });
    const recolour = () => plot.redraw(false, true);
    window.addEventListener("resize", resize);
    dark.addEventListener("change", recolour);
    return () => {
      window.removeEventListener("resize", resize);
      dark.removeEventListener("change", recolour);
      plot.destroy();
    };
  }, []);
  return html`<div id="chart" ref=${ref}></div>`;
}

function Editor({ onLines }) {
  const ref = useRef(null);
  useEffect(() => {
    // In a shadow root, CodeMirror styles itself through a constructed stylesheet
    // (adoptedStyleSheets), which the CSP's style-src 'self' allows; in the document it would
    // write a <style> element, which that CSP blocks (it would need a nonce, given through
    // EditorView.cspNonce). The page's CSS reaches in only through custom properties
    // (--gate-editor-bg and the rest, see gateTheme), which inherit across the boundary.
    const root = ref.current.shadowRoot ?? ref.current.attachShadow({ mode: "open" });
    const parent = document.createElement("div");
    root.replaceChildren(parent);
    const theme = new Compartment();
    const view = new EditorView({
      root,
      parent,
      state: EditorState.create({
        doc: SPEC,
        extensions: [
          editorSetup(),
          yaml(),
          theme.of(gateTheme({ dark: dark.matches })),
          EditorView.contentAttributes.of({ "aria-label": "gate.yaml" }),
          EditorView.updateListener.of((u) => {
            if (u.docChanged) onLines(u.state.doc.lines);
          }),
        ],
      }),
    });
    // What the Config page does with a `spec.validate` error (file:line:col path: message).
    const line = view.state.doc.line(11);
    view.dispatch(
      setDiagnostics(view.state, [
        {
          from: line.from + 4,
          to: line.to,
          severity: "error",
          message: "providers[0].url: the port is not listening",
        },
      ]),
    );
    const follow = () => view.dispatch({ effects: theme.reconfigure(gateTheme({ dark: dark.matches })) });
    dark.addEventListener("change", follow);
    onLines(view.state.doc.lines);
    return () => {
      dark.removeEventListener("change", follow);
      view.destroy();
    };
  }, []);
  return html`<div id="editor" ref=${ref}></div>`;
}

function Qr({ text }) {
  const { size, data } = encode(text, { border: 4 });
  let d = "";
  data.forEach((row, y) =>
    row.forEach((on, x) => {
      if (on) d += `M${x} ${y}h1v1h-1z`;
    }),
  );
  return html`<svg
    id="qr"
    role="img"
    aria-label=${`QR code: ${text}`}
    viewBox=${`0 0 ${size} ${size}`}
    data-size=${size}
    shape-rendering="crispEdges"
  >
    <path d=${d} />
  </svg>`;
}

function App() {
  const [lines, setLines] = useState(0);
  useEffect(() => {
    document.body.dataset.ready = "1";
  }, []);
  return html`
    <h1>Gate web rig</h1>
    <section aria-labelledby="s-preact">
      <h2 id="s-preact">Preact and htm</h2>
      <${Counter} />
    </section>
    <section aria-labelledby="s-chart">
      <h2 id="s-chart">uPlot</h2>
      <${Chart} />
    </section>
    <section aria-labelledby="s-editor">
      <h2 id="s-editor">CodeMirror</h2>
      <${Editor} onLines=${setLines} />
      <p id="lines">${lines} lines</p>
    </section>
    <section class="qr" aria-labelledby="s-qr">
      <h2 id="s-qr">QR code</h2>
      <${Qr} text="https://127.0.0.1:8145/#login=one-time-token" />
    </section>
  `;
}

render(html`<${App} />`, document.getElementById("app"));
