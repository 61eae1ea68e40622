// Placeholder until the real app lands: proves the shell, its CSP and the session work.
const root = document.getElementById("app");
const heading = document.createElement("h1");
heading.textContent = "Gate";
root.replaceChildren(heading);
