/**
 * What PostgreSQL's text and jsonb can hold, and how agent data that they cannot hold is stored
 * anyway (docs/protocol.md, "Text PostgreSQL cannot hold"). Pure functions, no I/O.
 *
 * text: any valid UTF-8 except U+0000. jsonb: the same for every string and key, no `\u0000`
 * escape, no unpaired surrogate, and no NaN or infinity (JSON has none). A value outside that
 * is stored twice: a display form that PostgreSQL accepts (U+0000 and unpaired surrogates
 * become U+FFFD, non-finite numbers become null) in the usual column, and the exact original in
 * the `*_raw` bytea column beside it (UTF-8 for text, msgpack for jsonb). The raw column is NULL
 * whenever the usual column already holds the value exactly, which is the common case and costs
 * nothing.
 */
import { Packr } from "msgpackr";

const REPLACEMENT = "\uFFFD";
const packr = new Packr({ useRecords: false });

/** Whether PostgreSQL's text can hold `s` exactly. */
export function textFits(s: string): boolean {
  return s.indexOf("\u0000") < 0 && s.isWellFormed();
}

/** The display form of `s`: U+0000 and unpaired surrogates become U+FFFD. */
export function displayText(s: string): string {
  return s.replaceAll("\u0000", REPLACEMENT).toWellFormed();
}

/** The exact bytes of a text that PostgreSQL cannot hold, for a `*_raw` bytea column. */
export function rawText(s: string): Uint8Array {
  return Buffer.from(s, "utf8");
}

export interface JsonForPg {
  /** JSON text that jsonb accepts. */
  text: string;
  /** The original as msgpack, when `text` does not hold it exactly; else undefined. */
  raw?: Uint8Array;
}

/** Whether `v` is a JSON value that jsonb holds exactly (and that JSON.stringify keeps as is). */
function jsonFits(v: unknown, depth: number): boolean {
  if (depth > 256) return false;
  switch (typeof v) {
    case "string":
      return textFits(v);
    case "number":
      return Number.isFinite(v); // -0 counts as 0, as in JSON and in msgpackr's encoder
    case "boolean":
      return true;
    case "object": {
      if (v === null) return true;
      if (Array.isArray(v)) {
        for (const x of v) if (!jsonFits(x, depth + 1)) return false;
        return true;
      }
      if (Object.getPrototypeOf(v) !== Object.prototype) return false; // Uint8Array, Date, ...
      for (const k in v) if (!textFits(k) || !jsonFits((v as Record<string, unknown>)[k], depth + 1)) return false;
      return true;
    }
    default:
      return false; // undefined, bigint, function: JSON drops or refuses them
  }
}

/** The display form of a value for jsonb (see the file comment). */
function displayJson(v: unknown): unknown {
  switch (typeof v) {
    case "string":
      return textFits(v) ? v : displayText(v);
    case "number":
      return Number.isFinite(v) ? v : null;
    case "bigint":
      return Number(v);
    case "object": {
      if (v === null) return null;
      if (Array.isArray(v)) return v.map(displayJson);
      if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
      if (v instanceof Date) return Number.isFinite(v.getTime()) ? v.toISOString() : null;
      const out: Record<string, unknown> = {};
      for (const k in v as Record<string, unknown>) out[textFits(k) ? k : displayText(k)] = displayJson((v as Record<string, unknown>)[k]);
      return out;
    }
    case "boolean":
      return v;
    default:
      return null;
  }
}

/** JSON text for a jsonb column, and the exact original when the text cannot hold it. */
export function jsonForPg(v: unknown): JsonForPg {
  if (jsonFits(v, 0)) return { text: JSON.stringify(v) };
  return { text: JSON.stringify(displayJson(v)), raw: packr.pack(v) };
}
