// The try page (issue 12): being built.
import { html } from "../ui/kit.js";

export default function Page() {
  return html`<p class="muted">This page is being built.</p>`;
}
