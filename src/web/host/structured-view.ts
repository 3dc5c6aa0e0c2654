/**
 * Turns arbitrary JSON (inventory snapshots, the agent's process status) into sections the
 * template can show: arrays of objects become tables, objects become key/value lists.
 * Values stay plain strings here; the template escapes them.
 */
export interface Section {
  title: string;
  kv?: Array<{ k: string; v: string }>;
  /** `filter`: the table is long enough to get a filter box (console.js filters its rows). */
  table?: { columns: string[]; rows: string[][]; more: number; filter?: boolean };
}

const MAX_ROWS = 300;
/** Tables (packages, ports, users) are shown whole up to here, with a filter box above them. */
const MAX_TABLE_ROWS = 5000;
const FILTER_FROM_ROWS = 20;
const MAX_COLS = 8;

/** About how many characters of a list of plain values a cell shows before "and N more". */
const LIST_CHARS = 200;

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  // a list of plain values (the security updates' package names) reads as a list, not as JSON cut off mid-word
  if (Array.isArray(v) && v.every((x) => x === null || typeof x !== "object")) return shortList(v.map((x) => String(x ?? "")));
  if (typeof v === "object") return JSON.stringify(v).slice(0, 200);
  return String(v).slice(0, 500);
}

function shortList(items: string[]): string {
  const shown: string[] = [];
  let chars = 0;
  for (const s of items) {
    if (shown.length && chars + s.length > LIST_CHARS) break;
    shown.push(s);
    chars += s.length + 2;
  }
  const more = items.length - shown.length;
  return shown.join(", ") + (more ? ` and ${more} more` : "");
}

const LABELS: Record<string, string> = { os: "Operating system", prettyName: "Full name", versionId: "Version ID" };
const ACRONYMS = new Set(["id", "os", "ip", "ipv4", "ipv6", "cpu", "pid", "ppid", "uid", "gid", "mac", "mtu", "tcp", "udp", "rss", "tls", "url"]);

/** A key as people read it: "prettyName" -> "Full name", "os" -> "Operating system", "mem_total" -> "Mem total". */
export function label(k: string): string {
  if (LABELS[k]) return LABELS[k]!;
  const words = k.replace(/([a-z0-9])([A-Z])/g, "$1 $2").split(/[\s_-]+/).filter(Boolean).map((w) => (ACRONYMS.has(w.toLowerCase()) ? w.toUpperCase() : w.toLowerCase()));
  const out = words.join(" ");
  return out.charAt(0).toUpperCase() + out.slice(1);
}
const title = label;

export function toSections(data: unknown, rootTitle = "General"): Section[] {
  if (data === null || typeof data !== "object") return data === undefined ? [] : [{ title: rootTitle, kv: [{ k: "value", v: cell(data) }] }];
  if (Array.isArray(data)) return [tableSection(rootTitle, data)];
  const general: Array<{ k: string; v: string }> = [];
  const sections: Section[] = [];
  for (const [k, v] of Object.entries(data as Record<string, unknown>)) {
    if (Array.isArray(v)) sections.push(tableSection(title(k), v));
    else if (v && typeof v === "object") {
      const entries = Object.entries(v as Record<string, unknown>);
      if (entries.length && entries.every(([, x]) => x && typeof x === "object" && !Array.isArray(x))) {
        sections.push(tableSection(title(k), entries.map(([name, x]) => ({ name, ...(x as object) }))));
      } else sections.push({ title: title(k), kv: entries.slice(0, MAX_ROWS).map(([kk, vv]) => ({ k: label(kk), v: cell(vv) })) });
    } else general.push({ k: label(k), v: cell(v) });
  }
  return general.length ? [{ title: rootTitle, kv: general }, ...sections] : sections;
}

/**
 * Columns that name a row first (a user's name before its GID, a port before its process): stored
 * inventory comes back from PostgreSQL's jsonb with its keys sorted by length, which put them last.
 */
const LEADING = ["name", "username", "user", "port", "protocol", "proto", "address", "pid", "command", "version", "state", "status"];

function leadingFirst(keys: string[]): string[] {
  const lead = LEADING.filter((k) => keys.includes(k));
  return [...lead, ...keys.filter((k) => !lead.includes(k))];
}

function tableSection(name: string, list: unknown[]): Section {
  if (!list.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
    return { title: name, kv: list.slice(0, MAX_ROWS).map((x, i) => ({ k: String(i + 1), v: cell(x) })) };
  }
  const keys: string[] = [];
  for (const row of list.slice(0, 50)) for (const k of Object.keys(row as object)) if (!keys.includes(k)) keys.push(k);
  const cols = leadingFirst(keys).slice(0, MAX_COLS);
  return {
    title: `${name} (${list.length})`,
    table: {
      columns: cols.map(label),
      rows: list.slice(0, MAX_TABLE_ROWS).map((r) => cols.map((c) => cell((r as Record<string, unknown>)[c]))),
      more: Math.max(0, list.length - MAX_TABLE_ROWS),
      ...(list.length > FILTER_FROM_ROWS ? { filter: true } : {}),
    },
  };
}
