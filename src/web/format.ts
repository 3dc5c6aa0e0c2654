/** Display formatting shared by the console views: times, percentages, sizes. */

export function ago(d: Date | string | null | undefined, now = Date.now()): string {
  if (!d) return "never";
  const s = Math.round((now - new Date(d).getTime()) / 1000);
  if (s < 0) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function isoMinute(d: Date | string | null | undefined): string {
  if (!d) return "";
  return new Date(d).toISOString().replace("T", " ").slice(0, 16) + " UTC";
}

export function isoSecond(d: Date | string | null | undefined): string {
  if (!d) return "";
  return new Date(d).toISOString().replace("T", " ").slice(0, 19);
}

export function pct(v: number | null | undefined): string {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : `${v.toFixed(1)}%`;
}

/** A level class for a percentage gauge: ok below 75, warn below 90, crit above. */
export function level(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return "none";
  return v >= 90 ? "crit" : v >= 75 ? "warn" : "ok";
}

export function formatValue(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e12) return `${(v / 1e12).toFixed(1)}T`;
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toFixed(2);
}
