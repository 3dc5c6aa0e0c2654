/**
 * Server-rendered line charts as SVG. Every value written into the markup is a number this
 * function formats, and the title is escaped, so the result is safe to insert as trusted HTML.
 */
import { escapeHtml, trustedHtml, type SafeHtml } from "../render.ts";
import { formatValue } from "../format.ts";

export interface ChartOptions {
  title: string;
  from: number;
  to: number;
  width?: number;
  height?: number;
  /** fixed y range (e.g. 0-100 for percentages); otherwise from the data */
  yMin?: number;
  yMax?: number;
  unit?: string;
  /**
   * a gap longer than this breaks the line; Infinity joins every point. Default: 2.5 times the
   * larger of a bucket (span / 240) and the series' own sampling interval (the median distance
   * between its points), so a 10 s agent interval in a 15-minute range (3.75 s buckets) is one
   * line, and a missing stretch of a few samples still shows as a gap.
   */
  gapMs?: number;
}

const PAD = { l: 46, r: 12, t: 26, b: 22 };

function timeLabel(ms: number, span: number): string {
  const d = new Date(ms);
  const hhmm = d.toISOString().slice(11, 16);
  return span > 2 * 86400_000 ? `${d.toISOString().slice(5, 10)} ${hhmm}` : hhmm;
}

/** A tick label: the value as tables show it, without the zeros a round tick does not need ("50", not "50.0"). */
function axisValue(v: number): string {
  return formatValue(v).replace(/\.0+(?=[a-zA-Z]*$)|(\.\d*?[1-9])0+(?=[a-zA-Z]*$)/, "$1");
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const n = raw / mag;
  return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * mag;
}

/** The median distance in time between consecutive points (0 for fewer than two). */
export function medianStep(points: Array<[number, number]>): number {
  const d: number[] = [];
  for (let i = 1; i < points.length; i++) d.push(points[i]![0] - points[i - 1]![0]);
  if (!d.length) return 0;
  d.sort((a, b) => a - b);
  return d[Math.floor(d.length / 2)]!;
}

export function lineChart(series: Array<{ name: string; points: Array<[number, number]> }>, o: ChartOptions): SafeHtml {
  const W = o.width ?? 560;
  const H = o.height ?? 180;
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const all = series.flatMap((s) => s.points.map((p) => p[1]));
  let lo = o.yMin ?? (all.length ? Math.min(...all) : 0);
  let hi = o.yMax ?? (all.length ? Math.max(...all) : 1);
  if (o.yMin === undefined && lo > 0) lo = 0;
  if (hi <= lo) hi = lo + 1;
  const step = niceStep(hi - lo, 4);
  if (o.yMax === undefined) hi = Math.ceil(hi / step) * step;
  const x = (t: number) => PAD.l + ((t - o.from) / (o.to - o.from)) * iw;
  const y = (v: number) => PAD.t + ih - ((v - lo) / (hi - lo)) * ih;
  const parts: string[] = [];
  parts.push(`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(o.title)}" xmlns="http://www.w3.org/2000/svg">`);
  parts.push(`<text class="chart-title" x="${PAD.l}" y="16">${escapeHtml(o.title)}${o.unit ? ` (${escapeHtml(o.unit)})` : ""}</text>`);
  for (let v = lo; v <= hi + step / 1e6; v += step) {
    const yy = y(v).toFixed(1);
    parts.push(`<line class="grid" x1="${PAD.l}" x2="${W - PAD.r}" y1="${yy}" y2="${yy}"/>`);
    parts.push(`<text class="axis" x="${PAD.l - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${axisValue(v)}</text>`);
  }
  const span = o.to - o.from;
  for (let i = 0; i <= 4; i++) {
    const t = o.from + (span * i) / 4;
    parts.push(`<text class="axis" x="${x(t).toFixed(1)}" y="${H - 6}" text-anchor="${i === 0 ? "start" : i === 4 ? "end" : "middle"}">${timeLabel(t, span)}</text>`);
  }
  if (all.length === 0) {
    parts.push(`<text class="nodata" x="${W / 2}" y="${H / 2}" text-anchor="middle">No data in this range</text>`);
  }
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    // break the line where data is missing (see ChartOptions.gapMs)
    const gap = o.gapMs ?? Math.max(span / 240, medianStep(s.points)) * 2.5;
    let d = "";
    let prev = -Infinity;
    for (const [t, v] of s.points) {
      d += `${prev === -Infinity || t - prev > gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    parts.push(`<path class="line s${i % 6}" d="${d}"/>`);
  });
  if (series.length > 1) {
    series.forEach((s, i) => {
      parts.push(`<text class="legend s${i % 6}" x="${W - PAD.r - (series.length - i) * 90}" y="16">${escapeHtml(s.name.slice(0, 14))}</text>`);
    });
  }
  parts.push("</svg>");
  return trustedHtml(parts.join(""));
}
