// The web UI's entry: draw the shell into #app. Pages live in pages/, shared pieces in ui/.
import { html, render } from "./ui/kit.js";
import { Shell } from "./ui/shell.js";

const root = document.getElementById("app");
root.replaceChildren(); // the "Loading Gate…" placeholder of index.html
render(html`<${Shell} />`, root);
