// A small SVG line of recent values (decorative: the number next to it carries the meaning).

import { svg } from "./dom.js";

const WIDTH = 96;
const HEIGHT = 24;

export const emptySparkline = () => svg("svg", { class: "sparkline", viewBox: `0 0 ${WIDTH} ${HEIGHT}`, "aria-hidden": "true", focusable: "false" });

/** Draws `values` (oldest first, at least two) into `target`, scaled to their maximum. */
export function drawSparkline(target, values) {
  if (values.length < 2) return target.replaceChildren();
  const max = Math.max(1e-9, ...values);
  const step = WIDTH / (values.length - 1);
  const line = values.map((value, i) => `${(i * step).toFixed(1)},${(HEIGHT - 2 - (value / max) * (HEIGHT - 4)).toFixed(1)}`).join(" ");
  target.replaceChildren(
    svg("polygon", { class: "sparkline-area", points: `0,${HEIGHT} ${line} ${WIDTH},${HEIGHT}` }),
    svg("polyline", { class: "sparkline-line", points: line }),
  );
}
