// The frame around every page: the node's name, the navigation, the live connection's state,
// and the page of the URL's hash (#/peers), loaded on first visit.
import { html, live, useEffect, useState, call } from "./kit.js";

export const PAGES = [
  { path: "dashboard", title: "Dashboard" },
  { path: "peers", title: "Peers" },
  { path: "providers", title: "Providers" },
  { path: "try", title: "Try it" },
  { path: "config", title: "Config" },
  { path: "requests", title: "Requests" },
  { path: "logs", title: "Logs" },
];

function currentPath() {
  // An invite link (…/#invite=<token>, wire/invite.py invite_link) opens Peers, which reads it.
  if (location.hash.startsWith("#invite=")) return "peers";
  const path = location.hash.replace(/^#\/?/, "").split("?")[0];
  return PAGES.some((p) => p.path === path) || path === "setup" ? path : "dashboard";
}

const loaded = new Map();

function usePage(path) {
  const [page, setPage] = useState(() => loaded.get(path) ?? null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setError(null);
    if (loaded.has(path)) { setPage(() => loaded.get(path)); return; }
    setPage(null);
    // A page that finishes loading after the user moved on must not replace the next one.
    let current = true;
    import(`../pages/${path}.js`).then(
      (module) => { loaded.set(path, module.default); if (current) setPage(() => module.default); },
      () => current && setError(`The ${path} page did not load: reload the page.`),
    );
    return () => { current = false; };
  }, [path]);
  return { page, error };
}

export function Shell() {
  const [path, setPath] = useState(currentPath);
  const [connection, setConnection] = useState(live.state);
  const [name, setName] = useState("");
  const [loggedOut, setLoggedOut] = useState(false);
  useEffect(() => {
    const onHash = () => setPath(currentPath());
    const onLoggedOut = () => setLoggedOut(true);
    window.addEventListener("hashchange", onHash);
    window.addEventListener("gate:logged-out", onLoggedOut);
    const off = live.on("state", setConnection);
    const offName = live.on("connected", () =>
      call("node.status").then((s) => { setName(s.name); document.title = `${s.name} · Gate`; }, () => {}));
    return () => {
      window.removeEventListener("hashchange", onHash);
      window.removeEventListener("gate:logged-out", onLoggedOut);
      off(); offName();
    };
  }, []);
  const { page: Page, error } = usePage(path);
  if (loggedOut) {
    return html`<main class="notice-box"><h1>Your session has ended</h1>
      <p>Run <code>gate ui</code> in a terminal and open the link it prints.</p></main>`;
  }
  const title = PAGES.find((p) => p.path === path)?.title ?? "Setup";
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href="#/dashboard"><img src="/ui/icon.svg" alt="" width="22" height="22"/>
        <span>${name || "Gate"}</span></a>
      <span class=${"conn " + connection} role="status">
        ${connection === "open" ? "live" : connection === "reconnecting" ? "reconnecting…" : "connecting…"}
      </span>
    </header>
    <nav class="tabs" aria-label="Pages">
      ${PAGES.map((p) => html`<a href=${"#/" + p.path}
        aria-current=${p.path === path ? "page" : undefined}>${p.title}</a>`)}
    </nav>
    <main id="main" tabindex="-1">
      <h1 class="page-title">${title}</h1>
      ${error ? html`<p class="error" role="alert">${error}</p>`
              : Page ? html`<${Page} />` : html`<p class="muted">Loading…</p>`}
    </main>`;
}
