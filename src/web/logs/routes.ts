/**
 * Fleet-wide log search (issue #17): /logs, one page with the query form, results newest first
 * with the matches highlighted, "older lines" by keyset, and a live tail polling for new lines
 * (paused while the tab is hidden). And the same search as JSON, GET /api/logs (API tokens with
 * logs.view). Always within the caller's logs.view host scope.
 */
import type { ConsoleRoute, ConsoleRequest } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import { json, type Pages } from "../respond.ts";
import { RANGES } from "../host/routes.ts";
import { isoSecond } from "../format.ts";
import { highlightParts, highlightTerms, levelLabel, LEVELS, LogQueryError, parseLogQuery, type LogQuery } from "../../logs/log-query.ts";
import { decodeCursor, encodeCursor, latestLogId, searchFleetLogsTiered, tagsInScope, tailFleetLogs, type FleetLogLine } from "../../logs/search.ts";
import { intParam, timeParam } from "../api/routes.ts";

export const LOG_PAGE = 100;
/** The longest custom range: the retention of logs is shorter anyway. */
const MAX_CUSTOM_MS = 400 * 86400_000;

interface Parsed {
  raw: { q: string; range: string; from: string; to: string; tag: string; live: boolean };
  query?: LogQuery;
  from: Date;
  to: Date;
  problems: string[];
}

function parseUtc(s: string): Date | undefined {
  const d = new Date(/Z|[+-]\d\d:?\d\d$/.test(s) ? s : `${s}Z`);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Reads the form; problems are messages for the form (answered with 400). */
export function parseLogSearch(q: URLSearchParams, now = Date.now()): Parsed {
  const raw = {
    q: (q.get("q") ?? "").slice(0, 2000),
    range: q.get("range") ?? "1h",
    from: (q.get("from") ?? "").trim().slice(0, 40),
    to: (q.get("to") ?? "").trim().slice(0, 40),
    tag: (q.get("tag") ?? "").trim().slice(0, 64),
    live: q.get("live") === "1",
  };
  const problems: string[] = [];
  let query: LogQuery | undefined;
  try {
    query = parseLogQuery(raw.q);
  } catch (e) {
    if (!(e instanceof LogQueryError)) throw e;
    problems.push(e.message);
  }
  if (query && raw.tag) query = { kind: "and", items: [{ kind: "field", field: "tag", value: raw.tag }, query] };
  let from = new Date(now - RANGES["1h"]!);
  let to = new Date(now + 60_000);
  if (raw.range === "custom") {
    const f = raw.from ? parseUtc(raw.from) : undefined;
    const t = raw.to ? parseUtc(raw.to) : new Date(now + 60_000);
    if (!f) problems.push(raw.from ? `"${raw.from}" is not a date and time for From (use YYYY-MM-DDTHH:MM, UTC).` : "A custom range needs a From time.");
    if (!t) problems.push(`"${raw.to}" is not a date and time for To (use YYYY-MM-DDTHH:MM, UTC).`);
    if (f && t) {
      if (f >= t) problems.push("From must be before To.");
      else if (t.getTime() - f.getTime() > MAX_CUSTOM_MS) problems.push("The range is longer than 400 days.");
      from = f;
      to = t;
    }
    raw.live = false;
  } else if (RANGES[raw.range]) {
    from = new Date(now - RANGES[raw.range]!);
  } else {
    problems.push(`Time range is one of ${Object.keys(RANGES).join(", ")} or custom.`);
  }
  return { raw, query, from, to, problems };
}

function lineView(r: FleetLogLine, terms: string[]) {
  return {
    ts: isoSecond(r.ts), hostname: r.hostname, hostHref: `/hosts/${r.agent_id}`, source: r.source,
    sev: LEVELS[r.severity] ?? String(r.severity), sevClass: r.severity <= 3 ? "crit" : r.severity === 4 ? "warn" : "info",
    parts: highlightParts(r.message, terms),
  };
}

export function logSearchRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  async function results(req: ConsoleRequest, p: Parsed) {
    const qs = new URLSearchParams({ q: p.raw.q, range: p.raw.range, ...(p.raw.range === "custom" ? { from: p.raw.from, to: p.raw.to } : {}), ...(p.raw.tag ? { tag: p.raw.tag } : {}) });
    if (p.problems.length || !p.query) return { problems: p.problems, rows: [], more: "", tailUrl: "", searched: false, qs: qs.toString() };
    const terms = highlightTerms(p.query);
    const before = decodeCursor(req.query.get("before"));
    const tailStart = p.raw.live ? await latestLogId(sql) : "";
    const found = await searchFleetLogsTiered(sql, req.scope, { query: p.query, from: p.from, to: p.to, limit: LOG_PAGE, before }, s.logArchive);
    const rows = found.lines;
    const last = rows[rows.length - 1];
    return {
      problems: [], searched: true, qs: qs.toString(),
      archiveError: found.archiveError ? `Lines older than PostgreSQL's retention are kept in ClickHouse, which did not answer (${found.archiveError}); they are missing below.` : "",
      rows: rows.map((r) => lineView(r, terms)),
      more: rows.length === LOG_PAGE && last ? `/logs?${qs}&before=${encodeURIComponent(encodeCursor(last))}` : "",
      tailUrl: p.raw.live ? `/logs?${qs}&live=1&after=${tailStart}` : "",
    };
  }

  const bad = (message: string) => json({ error: { code: "bad_request", message } }, 400);

  return [
    {
      method: "GET", path: "/api/logs", access: "logs.view", hostData: "fleet",
      doc: {
        summary: "Search the logs of every host in scope, newest first (keyset-paged)",
        description: "The /logs page's search as JSON. With the ClickHouse tier on, lines older than PostgreSQL's log retention are read from ClickHouse (`archive`: not-needed, searched, or unavailable with `archive_error`). Query syntax: words, \"phrases\", AND / OR / NOT (or -word), parentheses, host:, unit:, tag:, level: (level:warning means warning or more severe).",
        query: {
          q: "The query (required; at most 500 characters)",
          from: "Start: milliseconds since the epoch or ISO 8601 (default 24 hours before to)",
          to: "End, exclusive (default now); at most 400 days after from",
          tag: "Only hosts carrying this tag (within the caller's scope)",
          limit: "Lines per page, 1-500 (default 100)",
          before: "The `next` cursor of the previous page: lines older than its last line",
        },
      },
      async handler(req) {
        const text = req.query.get("q");
        if (text === null || !text.trim()) return bad("q: a log query is required (words, \"phrases\", AND/OR/NOT, host:, unit:, tag:, level:)");
        let query: LogQuery;
        try {
          query = parseLogQuery(text);
        } catch (e) {
          if (e instanceof LogQueryError) return bad(`q: ${e.message}`);
          throw e;
        }
        const tag = (req.query.get("tag") ?? "").trim();
        if (tag.length > 64) return bad("tag: at most 64 characters");
        if (tag) query = { kind: "and", items: [{ kind: "field", field: "tag", value: tag }, query] };
        const to = timeParam(req.query, "to", Date.now());
        const from = to === null ? null : timeParam(req.query, "from", to - 86_400_000);
        if (to === null || from === null) return bad("from and to are milliseconds since the epoch or ISO 8601 dates");
        if (from >= to) return bad("from must be before to");
        if (to - from > MAX_CUSTOM_MS) return bad("from and to are at most 400 days apart");
        const limit = intParam(req.query, "limit", 100, 1, 500);
        if (limit === null) return bad("limit is an integer 1-500");
        const beforeRaw = req.query.get("before");
        const before = beforeRaw ? decodeCursor(beforeRaw) : undefined;
        if (beforeRaw && !before) return bad("before: not a cursor (use the previous page's next)");
        const found = await searchFleetLogsTiered(sql, req.scope, { query, from: new Date(from), to: new Date(to), limit, before }, s.logArchive);
        const rows = found.lines;
        const last = rows[rows.length - 1];
        return json({
          from: new Date(from).toISOString(), to: new Date(to).toISOString(), limit,
          archive: found.archive, ...(found.archiveError ? { archive_error: found.archiveError } : {}),
          lines: rows.map((r) => ({
            id: r.id, ts: r.ts, host: { id: r.agent_id, hostname: r.hostname }, severity: r.severity,
            level: LEVELS[r.severity] ?? String(r.severity), source: r.source, message: r.message,
          })),
          next: rows.length === limit && last ? encodeCursor(last) : null,
        });
      },
    },
    {
      method: "GET", path: "/logs", access: "logs.view", hostData: "fleet",
      doc: { summary: "Search the logs of every host in scope", description: "Query syntax: words, \"phrases\", AND / OR / NOT (or -word), parentheses, host:, unit:, tag:, level: (level:warning means warning or more severe)." },
      async handler(req) {
        const p = parseLogSearch(req.query);
        const target = req.htmx.request ? req.htmx.target : "";
        if (target === "log-tail") {
          // the live tail's poll: lines written after the last one it saw
          const after = /^\d{1,19}$/.test(req.query.get("after") ?? "") ? req.query.get("after")! : "0";
          if (!p.query || p.problems.length) return pages.partial("partials/log-tail", { tailUrl: "", rows: [] });
          const rows = await tailFleetLogs(sql, req.scope, { query: p.query, afterId: after, since: p.from, until: new Date(Date.now() + 86400_000), limit: 200 });
          const newest = rows[0]?.id ?? after;
          const terms = highlightTerms(p.query);
          const qs = new URLSearchParams(req.query);
          qs.set("after", newest);
          return pages.partial("partials/log-tail", { tailUrl: `/logs?${qs}`, rows: rows.map((r) => lineView(r, terms)) });
        }
        const submitted = req.query.has("q");
        const v = submitted ? await results(req, p) : { problems: [], rows: [], more: "", tailUrl: "", searched: false, qs: "" };
        const status = v.problems.length ? 400 : 200;
        if (target === "log-more") return pages.partial("partials/log-rows", v, status);
        if (target === "log-results") return pages.partial("partials/log-results", v, status);
        return pages.page(req, "pages/logs", "Logs", {
          ...v, raw: p.raw, custom: p.raw.range === "custom",
          ranges: [...Object.keys(RANGES), "custom"].map((r) => ({ r, label: r === "custom" ? "Custom" : `Last ${r}`, selected: r === p.raw.range })),
          tags: [{ t: "", label: "All hosts in scope", selected: !p.raw.tag }, ...(await tagsInScope(sql, req.scope)).map((t) => ({ t, label: t, selected: t === p.raw.tag }))],
          levels: LEVELS.map((name, i) => ({ name, meaning: levelLabel(i) })),
        }, status);
      },
    },
  ];
}
