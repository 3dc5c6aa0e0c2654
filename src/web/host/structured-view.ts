/**
 * Turns arbitrary JSON (inventory snapshots, the agent's process status) into sections the
 * template can show: arrays of objects become tables, objects become key/value lists.
 * Values stay plain strings here; the template escapes them.
 */
export interface Section {
  title: string;
  kv?: Array<{ k: string; v: string }>;
  table?: { columns: string[]; rows: string[][]; more: number };
}

const MAX_ROWS = 300;
const MAX_COLS = 8;

function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v).slice(0, 200);
  return String(v).slice(0, 500);
}

function title(k: string): string {
  return k.replace(/[_-]+/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}

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
      } else sections.push({ title: title(k), kv: entries.slice(0, MAX_ROWS).map(([kk, vv]) => ({ k: kk, v: cell(vv) })) });
    } else general.push({ k, v: cell(v) });
  }
  return general.length ? [{ title: rootTitle, kv: general }, ...sections] : sections;
}

function tableSection(name: string, list: unknown[]): Section {
  if (!list.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
    return { title: name, kv: list.slice(0, MAX_ROWS).map((x, i) => ({ k: String(i + 1), v: cell(x) })) };
  }
  const cols: string[] = [];
  for (const row of list.slice(0, 50)) for (const k of Object.keys(row as object)) if (!cols.includes(k) && cols.length < MAX_COLS) cols.push(k);
  return {
    title: `${name} (${list.length})`,
    table: {
      columns: cols,
      rows: list.slice(0, MAX_ROWS).map((r) => cols.map((c) => cell((r as Record<string, unknown>)[c]))),
      more: Math.max(0, list.length - MAX_ROWS),
    },
  };
}
