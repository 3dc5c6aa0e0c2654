/**
 * The console's template engine and SVG chart, handed to the security feature's partials. Scores
 * are computed every 15 minutes while the server runs; the trend joins every stored point.
 */
import type { SecurityViews } from "../../security/views.ts";
import { lineChart } from "../chart/svg.ts";
import type { Renderer } from "../render.ts";

export function createSecurityViews(renderer: Renderer): SecurityViews {
  return {
    render: (view, data) => renderer.render(view, data),
    scoreChart: (points, fromMs, toMs) =>
      lineChart([{ name: "score", points }], { title: "Security score", from: fromMs, to: toMs, yMin: 0, yMax: 100, height: 150, gapMs: Infinity }),
  };
}
