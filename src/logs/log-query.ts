/**
 * The fleet log search's query language (issue #17): a small parser from the text a user types
 * to an AST, and from the AST to a postgres.js fragment with every value a bound parameter.
 *
 *   disk full            both words (AND is implied between terms)
 *   "disk full"          the phrase, as typed
 *   error OR warning     either; AND binds tighter than OR
 *   NOT debug, -debug    lines without the word
 *   (a OR b) c           parentheses group
 *   host:web-1           the host's name (case-insensitive; * is a wildcard: host:web-*)
 *   unit:sshd.service    the systemd unit or log source, as the agent reported it (same rules)
 *   tag:env=prod         hosts carrying the tag (still within the caller's host scope)
 *   level:warning        this severity and the more severe ones (warning, err, crit, alert, emerg)
 *
 * Words and phrases match anywhere in the message, case-insensitively (ILIKE with the pattern
 * characters escaped; the trigram index of migration 500 serves it). Operators are upper case;
 * a lower-case "and"/"or"/"not" is an ordinary word. Every malformed query raises LogQueryError
 * with a message meant for the form; nothing else is thrown.
 */
import type { Sql, PendingQuery, Row } from "postgres";

/** The one error type of the parser: its message is shown to the user under the search box. */
export class LogQueryError extends Error {
  override name = "LogQueryError";
}

/** Syslog severities, most severe first: the number is the syslog code. */
export const LEVELS = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"] as const;
const LEVEL_ALIASES: Record<string, number> = {
  emerg: 0, emergency: 0, panic: 0, alert: 1, crit: 2, critical: 2, err: 3, error: 3,
  warning: 4, warn: 4, notice: 5, info: 6, informational: 6, debug: 7,
};
export const FIELDS = ["host", "unit", "tag", "level"] as const;
export type Field = (typeof FIELDS)[number];

export type LogQuery =
  | { kind: "term"; text: string; phrase: boolean }
  | { kind: "field"; field: Exclude<Field, "level">; value: string }
  | { kind: "level"; severity: number }
  | { kind: "not"; expr: LogQuery }
  | { kind: "and"; items: LogQuery[] }
  | { kind: "or"; items: LogQuery[] };

export const MAX_QUERY_LENGTH = 500;
const MAX_TERMS = 32;
const MAX_DEPTH = 16;

type Token =
  | { t: "word"; v: string; at: number }
  | { t: "phrase"; v: string; at: number }
  | { t: "field"; f: string; v: string; quoted: boolean; at: number }
  | { t: "(" | ")" | "AND" | "OR" | "NOT" | "-"; at: number };

const SPECIAL = /[\s()"]/;

function tokenize(q: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const readQuoted = (start: number): { v: string; end: number } => {
    const close = q.indexOf('"', start + 1);
    if (close < 0) throw new LogQueryError(`The quote at character ${start + 1} is never closed; add a closing ".`);
    return { v: q.slice(start + 1, close), end: close + 1 };
  };
  while (i < q.length) {
    const c = q[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === "(" || c === ")") { out.push({ t: c, at: i }); i++; continue; }
    if (c === '"') {
      const { v, end } = readQuoted(i);
      if (!v.trim()) throw new LogQueryError(`The quotes at character ${i + 1} hold nothing; put a phrase between them or remove them.`);
      out.push({ t: "phrase", v, at: i });
      i = end;
      continue;
    }
    if (c === "-" && i + 1 < q.length && !/[\s)]/.test(q[i + 1]!) && (i === 0 || /[\s(]/.test(q[i - 1]!))) {
      out.push({ t: "-", at: i });
      i++;
      continue;
    }
    let j = i;
    while (j < q.length && !SPECIAL.test(q[j]!)) j++;
    const word = q.slice(i, j);
    const m = /^([A-Za-z]+):(.*)$/.exec(word);
    if (m && (FIELDS as readonly string[]).includes(m[1]!.toLowerCase())) {
      if (m[2] === "" && q[j] === '"') {
        const { v, end } = readQuoted(j);
        out.push({ t: "field", f: m[1]!.toLowerCase(), v, quoted: true, at: i });
        i = end;
        continue;
      }
      out.push({ t: "field", f: m[1]!.toLowerCase(), v: m[2]!, quoted: false, at: i });
    } else if (m && KNOWN_LOOKALIKE.has(m[1]!.toLowerCase())) {
      throw new LogQueryError(`Unknown field "${m[1]}:". Fields are ${FIELDS.map((f) => f + ":").join(", ")}; put the text in quotes to search for it literally.`);
    } else if (word === "AND" || word === "OR" || word === "NOT") {
      out.push({ t: word, at: i });
    } else {
      out.push({ t: "word", v: word, at: i });
    }
    i = j;
  }
  return out;
}

/**
 * Names that look like a field a user may expect (other log tools' fields) but are not one: an
 * error says so instead of silently searching for "source:sshd" as text. Other "x:y" words
 * (timestamps, URLs, "error:", key:value pairs in messages) stay ordinary words.
 */
const KNOWN_LOOKALIKE = new Set(["source", "service", "hostname", "severity", "priority", "program", "app", "message", "msg", "lvl", "sev", "facility", "ident", "pid", "tags", "hosts", "units"]);

/** Parses a query; throws LogQueryError (and nothing else) when it is malformed or empty. */
export function parseLogQuery(input: string): LogQuery {
  if (typeof input !== "string") throw new LogQueryError("The query must be text.");
  if (input.length > MAX_QUERY_LENGTH) throw new LogQueryError(`The query is ${input.length} characters long; at most ${MAX_QUERY_LENGTH}.`);
  if (!input.trim()) throw new LogQueryError("The query is empty; type a word, a \"phrase\" or a filter such as level:err.");
  const tokens = tokenize(input);
  let pos = 0;
  let terms = 0;
  const peek = () => tokens[pos];
  const where = (tok: Token | undefined) => (tok ? `at character ${tok.at + 1}` : "at the end");

  const parseOr = (depth: number): LogQuery => {
    const items = [parseAnd(depth)];
    while (peek()?.t === "OR") {
      const op = tokens[pos++]!;
      if (!peek() || peek()!.t === ")" || peek()!.t === "OR" || peek()!.t === "AND") throw new LogQueryError(`OR ${where(op)} needs a term after it.`);
      items.push(parseAnd(depth));
    }
    return items.length === 1 ? items[0]! : { kind: "or", items };
  };
  const parseAnd = (depth: number): LogQuery => {
    const items = [parseUnary(depth)];
    for (;;) {
      const tok = peek();
      if (!tok || tok.t === ")" || tok.t === "OR") break;
      if (tok.t === "AND") {
        pos++;
        if (!peek() || peek()!.t === ")" || peek()!.t === "OR" || peek()!.t === "AND") throw new LogQueryError(`AND ${where(tok)} needs a term after it.`);
      }
      items.push(parseUnary(depth));
    }
    return items.length === 1 ? items[0]! : { kind: "and", items };
  };
  const parseUnary = (depth: number): LogQuery => {
    if (depth > MAX_DEPTH) throw new LogQueryError(`The query nests deeper than ${MAX_DEPTH} levels; simplify it.`);
    const tok = peek();
    if (tok && (tok.t === "NOT" || tok.t === "-")) {
      pos++;
      if (!peek() || peek()!.t === ")" || peek()!.t === "OR" || peek()!.t === "AND") throw new LogQueryError(`${tok.t === "-" ? "-" : "NOT"} ${where(tok)} needs a term after it.`);
      return { kind: "not", expr: parseUnary(depth + 1) };
    }
    return parseAtom(depth);
  };
  const parseAtom = (depth: number): LogQuery => {
    const tok = tokens[pos++];
    if (!tok) throw new LogQueryError("The query ends where a term was expected.");
    if (++terms > MAX_TERMS) throw new LogQueryError(`The query has more than ${MAX_TERMS} terms; narrow it down.`);
    switch (tok.t) {
      case "(": {
        if (peek()?.t === ")") throw new LogQueryError(`The parentheses ${where(tok)} hold nothing.`);
        const inner = parseOr(depth + 1);
        if (peek()?.t !== ")") throw new LogQueryError(`The parenthesis ${where(tok)} is never closed; add a ")".`);
        pos++;
        return inner;
      }
      case ")":
        throw new LogQueryError(`The ")" ${where(tok)} has no matching "(".`);
      case "AND": case "OR":
        throw new LogQueryError(`${tok.t} ${where(tok)} needs a term before it.`);
      case "word":
        return { kind: "term", text: tok.v, phrase: false };
      case "phrase":
        return { kind: "term", text: tok.v, phrase: true };
      case "field":
        return fieldNode(tok.f as Field, tok.v, tok.at);
      default:
        throw new LogQueryError(`Unexpected "${tok.t}" ${where(tok)}.`);
    }
  };

  const ast = parseOr(0);
  if (pos < tokens.length) {
    const tok = tokens[pos]!;
    throw new LogQueryError(tok.t === ")" ? `The ")" ${where(tok)} has no matching "(".` : `Unexpected text ${where(tok)}.`);
  }
  return ast;
}

function fieldNode(field: Field, value: string, at: number): LogQuery {
  if (!value.trim()) throw new LogQueryError(`${field}: at character ${at + 1} needs a value, e.g. ${field === "level" ? "level:err" : `${field}:NAME`}.`);
  if (field === "level") {
    const severity = LEVEL_ALIASES[value.toLowerCase()] ?? (/^[0-7]$/.test(value) ? Number(value) : undefined);
    if (severity === undefined) throw new LogQueryError(`"${value}" is not a level; use one of ${LEVELS.join(", ")} (level:warning means warning or more severe).`);
    return { kind: "level", severity };
  }
  if (value.length > 200) throw new LogQueryError(`The ${field}: value is longer than 200 characters.`);
  return { kind: "field", field, value };
}

/** What a level filter means, in words: "warning or more severe" (never "emerg and worse"). */
export function levelLabel(severity: number): string {
  const name = LEVELS[severity] ?? String(severity);
  return severity === 0 ? `${name} only` : `${name} or more severe`;
}

/** Escapes LIKE's pattern characters; `*` becomes % when `wildcard` is set. */
export function likePattern(text: string, opts: { contains: boolean; wildcard?: boolean }): string {
  let p = text.replace(/[\\%_]/g, (c) => "\\" + c);
  if (opts.wildcard) p = p.replace(/\*/g, "%");
  return opts.contains ? `%${p}%` : p;
}

/**
 * The WHERE condition of a query over `logs l join agents a on a.id = l.agent_id`, as a
 * postgres.js fragment: every word, phrase and field value is a bound parameter.
 */
export function logQuerySql(sql: Sql, q: LogQuery): PendingQuery<Row[]> {
  switch (q.kind) {
    case "term":
      return sql`l.message ilike ${likePattern(q.text, { contains: true })}`;
    case "level":
      return sql`l.severity <= ${q.severity}`;
    case "field":
      if (q.field === "host") return sql`a.hostname ilike ${likePattern(q.value, { contains: false, wildcard: true })}`;
      if (q.field === "unit") return sql`l.source ilike ${likePattern(q.value, { contains: false, wildcard: true })}`;
      return sql`a.tags @> array[${q.value}::text]`;
    case "not":
      return sql`not coalesce(${logQuerySql(sql, q.expr)}, false)`;
    case "and":
    case "or": {
      const op = q.kind === "and" ? sql` and ` : sql` or `;
      let out = sql`(${logQuerySql(sql, q.items[0]!)}`;
      for (const item of q.items.slice(1)) out = sql`${out}${op}${logQuerySql(sql, item)}`;
      return sql`${out})`;
    }
  }
}

/**
 * The words and phrases a matching line contains for certain (those not under a NOT), for
 * highlighting; lower-cased, longest first.
 */
export function highlightTerms(q: LogQuery): string[] {
  const out = new Set<string>();
  const walk = (n: LogQuery, negated: boolean) => {
    if (n.kind === "term" && !negated && n.text) out.add(n.text.toLowerCase());
    else if (n.kind === "not") walk(n.expr, !negated);
    else if (n.kind === "and" || n.kind === "or") for (const i of n.items) walk(i, negated);
  };
  walk(q, false);
  return [...out].sort((a, b) => b.length - a.length);
}

/** A message cut into plain and matched parts; the view escapes both and wraps matches in <mark>. */
export function highlightParts(message: string, terms: readonly string[]): Array<{ text: string; hit: boolean }> {
  if (!terms.length || !message) return [{ text: message, hit: false }];
  const lower = message.toLowerCase();
  // toLowerCase can change a string's length (e.g. "İ"); highlight only when it does not
  if (lower.length !== message.length) return [{ text: message, hit: false }];
  const marks = new Uint8Array(message.length);
  for (const t of terms) {
    if (!t) continue;
    for (let i = lower.indexOf(t); i >= 0; i = lower.indexOf(t, i + 1)) marks.fill(1, i, i + t.length);
  }
  const parts: Array<{ text: string; hit: boolean }> = [];
  let start = 0;
  for (let i = 1; i <= message.length; i++) {
    if (i === message.length || marks[i] !== marks[start]) {
      parts.push({ text: message.slice(start, i), hit: marks[start] === 1 });
      start = i;
    }
  }
  return parts;
}
