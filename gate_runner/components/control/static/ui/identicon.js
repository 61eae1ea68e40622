// A node's identicon, as Syncthing draws a device's: a 5x5 pattern mirrored about its middle
// column, chosen by a hash of the peer id, so two people can compare ids at a glance. Drawn as
// an SVG of rects (fill set by attribute: the CSP allows no inline style in markup).
import { html } from "./kit.js";

// 32-bit FNV-1a with a seed: a sync, deterministic hash (crypto.subtle needs a secure
// context, which a LAN address over http is not). It picks a pattern, it secures nothing.
function fnv(text, seed) {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

// The cells to fill (row, column) and the hue, from the id alone.
export function identiconCells(id) {
  const bits = fnv(id, 0x9e37) ^ (fnv(id, 0x79b9) << 7);
  const cells = [];
  for (let row = 0; row < 5; row++) {
    for (let col = 0; col < 3; col++) {
      if ((bits >>> (row * 3 + col)) & 1) {
        cells.push([row, col]);
        if (col < 2) cells.push([row, 4 - col]);
      }
    }
  }
  // An empty pattern tells nothing apart: fill the middle column then.
  if (!cells.length) for (let row = 0; row < 5; row++) cells.push([row, 2]);
  return { cells, hue: fnv(id, 0x2545) % 360 };
}

// The tile carries its own pale background and dark pattern of one hue, so its contrast
// (over 4.5:1) is the same in the light and the dark theme.
export function Identicon({ id, size = 64 }) {
  if (!id) return null;
  const { cells, hue } = identiconCells(id);
  return html`<svg class="identicon" width=${size} height=${size} viewBox="0 0 7 7"
      role="img" aria-label=${`Identicon of ${id.slice(0, 12)}…`} shape-rendering="crispEdges">
    <rect width="7" height="7" rx="0.6" fill=${`hsl(${hue} 70% 92%)`} />
    ${cells.map(([row, col]) => html`<rect x=${col + 1} y=${row + 1} width="1" height="1"
      fill=${`hsl(${hue} 65% 30%)`} />`)}
  </svg>`;
}
