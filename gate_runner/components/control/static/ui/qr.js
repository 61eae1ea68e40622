// The QR code of an invite, as an SVG of rects (no canvas, no inline style): dark on white
// in both themes, since a scanner wants the quiet zone light.
import { encode } from "qr";
import { html } from "./kit.js";

export function QrCode({ text, label = "QR code of this node's invite" }) {
  const { data, size } = encode(text, { ecc: "L", border: 2 });
  // One rect per run of dark modules in a row: a third of the elements of one per module.
  const runs = [];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!data[y][x]) continue;
      const start = x;
      while (x + 1 < size && data[y][x + 1]) x++;
      runs.push(html`<rect x=${start} y=${y} width=${x - start + 1} height="1" />`);
    }
  }
  return html`<svg class="qr" viewBox=${`0 0 ${size} ${size}`} role="img"
      aria-label=${label} shape-rendering="crispEdges">
    <rect width=${size} height=${size} fill="#ffffff" />
    <g fill="#000000">${runs}</g>
  </svg>`;
}
