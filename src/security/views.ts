/**
 * HTML partials for the console (htmx swaps them in). Every value goes through `esc`; each
 * fragment owns its id so it can target itself.
 */
import type { SecurityScore } from "./score.ts";
import type { Incident } from "./incidents.ts";
import type { ControlPassRate } from "./posture.ts";

export const esc = (v: unknown) =>
  String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const when = (d: unknown) => (d ? esc(new Date(d as string).toISOString().replace("T", " ").slice(0, 19)) : "");

export function scoreCard(agentId: number, s: SecurityScore): string {
  const rows = Object.entries(s.categories)
    .map(([k, c]) => `<tr><th>${esc(k)}</th><td>${c.score === null ? "?" : esc(c.score)}</td><td>${esc(c.weight)}</td><td>${esc(c.detail)}</td></tr>`)
    .join("");
  return `<section id="security-score-${esc(agentId)}" class="security-score"><h3>Security score <strong>${esc(s.score)}</strong>/100</h3>` +
    `<table><thead><tr><th>Category</th><th>Score</th><th>Weight</th><th>Why</th></tr></thead><tbody>${rows}</tbody></table>` +
    (s.unknown.length ? `<p class="muted">No data yet (counted as 50): ${esc(s.unknown.join(", "))}</p>` : "") + `</section>`;
}

export function violationRows(rows: any[]): string {
  return `<tbody id="violation-rows">${rows
    .map(
      (v) => `<tr id="violation-${esc(v.id)}"><td>${esc(v.hostname)}</td><td>${esc(v.control_id)}</td><td>${esc(v.severity)}</td><td>${esc(v.observed)}</td>` +
        `<td>${when(v.first_seen)}</td><td>${when(v.last_seen)}</td>` +
        `<td>${v.acknowledged_at ? `${when(v.acknowledged_at)} by ${esc(v.acknowledged_by)}${v.ack_note ? `: ${esc(v.ack_note)}` : ""}` : `<button hx-post="/api/security/posture/violations/${esc(v.id)}/ack" hx-target="#violation-${esc(v.id)}" hx-swap="outerHTML">Acknowledge</button>`}</td>` +
        `<td>${v.resolved_at ? `${when(v.resolved_at)} by ${esc(v.resolved_by)}` : "open"}</td></tr>`,
    )
    .join("")}</tbody>`;
}

export function passRateRows(rows: ControlPassRate[]): string {
  return `<tbody id="control-pass-rates">${rows
    .map((r) => `<tr><td>${esc(r.control_id)}</td><td>${esc(r.category)}</td><td>${esc(r.passed)}/${esc(r.hosts)}</td><td>${r.pass_rate === null ? "-" : esc(Math.round(r.pass_rate * 100)) + "%"}</td></tr>`)
    .join("")}</tbody>`;
}

export function incidentTimeline(agentId: number, incidents: Incident[]): string {
  return `<section id="incidents-${esc(agentId)}">${incidents
    .map(
      (i) => `<article class="incident sev-${esc(i.severity)}"><h4>${esc(i.title)}</h4><p>${when(i.startMs)} – ${when(i.endMs)} · severity ${esc(i.severity)}</p><ol>` +
        i.timeline.map((s) => `<li data-kind="${esc(s.kind)}"><time>${when(s.ts)}</time> <b>${esc(s.kind)}</b> ${esc(s.summary)}</li>`).join("") + `</ol></article>`,
    )
    .join("") || "<p>No incidents in this period.</p>"}</section>`;
}

export function remediationResult(r: any): string {
  if (!r?.ok) return `<div id="remediation-result" class="error">${esc(r?.error ?? "failed")}</div>`;
  const changes = (r.changes ?? [])
    .map((c: any) => `<li><code>${esc(c.path)}</code> ${c.before.exists ? `${esc(c.before.mode)} ${esc(c.before.uid)}:${esc(c.before.gid)}` : "(new)"} → ${esc(c.after.mode)} ${esc(c.after.uid)}:${esc(c.after.gid)}${c.diff ? `<pre>${esc(c.diff)}</pre>` : ""}</li>`)
    .join("");
  return `<div id="remediation-result"><p>${r.dryRun ? "Dry run: nothing was changed." : r.snapshot ? `Applied; snapshot ${esc(r.snapshot)}.` : "Done."}</p><ul>${changes}</ul>` +
    ((r.skipped ?? []).length ? `<p>Skipped: ${(r.skipped as any[]).map((s) => `${esc(s.id)} (${esc(s.reason)})`).join("; ")}</p>` : "") + `</div>`;
}

/** The score trend as an inline SVG line (0-100 on the y axis), no client-side code. */
export function scoreTrendSvg(agentId: number, points: Array<[number, number]>, width = 320, height = 80): string {
  if (!points.length) return `<figure id="score-trend-${esc(agentId)}"><figcaption>No score history yet.</figcaption></figure>`;
  const t0 = points[0][0];
  const span = Math.max(1, points[points.length - 1][0] - t0);
  const xy = points.map(([t, v]) => `${((width * (t - t0)) / span).toFixed(1)},${(height - (height * v) / 100).toFixed(1)}`).join(" ");
  const last = points[points.length - 1][1];
  return `<figure id="score-trend-${esc(agentId)}"><svg viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="security score trend, latest ${esc(last)}">` +
    `<polyline fill="none" stroke="currentColor" stroke-width="2" points="${xy}"/></svg><figcaption>Latest ${esc(last)}/100</figcaption></figure>`;
}
