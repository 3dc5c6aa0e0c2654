/**
 * The ClickHouse connection (`clickhouse.url`, CLICKHOUSE_URL), through @clickhouse/client over
 * HTTP. The URL's path names the database (default `servermind`); user and password may be in
 * the URL. Works against ClickHouse 18.16 (Debian 12's package) and newer.
 *
 * 18.16 knows no server-side query parameters ({name:Type} arrive as an unknown setting
 * `param_name`), so values are bound here on the client by `bind`: every placeholder has a type,
 * numbers must be finite numbers of that type and strings are quoted with ClickHouse's escaping.
 * Nothing is ever pasted into SQL unchecked.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from "@clickhouse/client";
import { Readable } from "node:stream";

export interface ClickhouseOptions {
  /** e.g. http://default:@127.0.0.1:8123/servermind */
  url: string;
  requestTimeoutMs?: number;
}

export interface Clickhouse {
  client: ClickHouseClient;
  database: string;
  /** Runs a statement that returns nothing (DDL, ALTER). */
  exec(query: string, params?: Params): Promise<void>;
  /** Runs a query and returns its rows (JSONEachRow: 64-bit integers arrive as strings). */
  rows<T>(query: string, params?: Params): Promise<T[]>;
  /** Inserts RowBinary bytes (one round trip); resolves when ClickHouse confirmed the insert. */
  insertRowBinary(table: string, columns: string[], bytes: Buffer): Promise<void>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export type Value = number | bigint | string | number[] | string[];
export type Params = Record<string, Value>;

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function checkIdentifier(name: string, what = "identifier"): string {
  if (!IDENT.test(name)) throw new Error(`${what} ${JSON.stringify(name)} is not a plain ClickHouse identifier ([A-Za-z_][A-Za-z0-9_]*)`);
  return name;
}

/** A ClickHouse string literal: backslash escapes as the SQL parser reads them. */
export function quoteString(s: string): string {
  return "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t").replace(/\0/g, "\\0") + "'";
}

function literal(type: string, v: Value, name: string): string {
  const bad = () => new Error(`query parameter ${name}=${JSON.stringify(typeof v === "bigint" ? String(v) : v)} is not a ${type}`);
  const tuple = /^Tuple\((.+)\)$/.exec(type);
  if (tuple) {
    // for `x in {ids:Tuple(UInt32)}`: a parenthesised list, which IN reads as a set
    if (!Array.isArray(v) || v.length === 0) throw new Error(`query parameter ${name} must be a non-empty list for IN`);
    return "(" + (v as Value[]).map((x, i) => literal(tuple[1]!, x, `${name}[${i}]`)).join(",") + ")";
  }
  const arr = /^Array\((.+)\)$/.exec(type);
  if (arr) {
    if (!Array.isArray(v)) throw bad();
    return "[" + (v as Value[]).map((x, i) => literal(arr[1]!, x, `${name}[${i}]`)).join(",") + "]";
  }
  if (/^U?Int(8|16|32|64)$/.test(type)) {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number" && Number.isSafeInteger(v)) return String(v);
    if (typeof v === "string" && /^-?\d{1,20}$/.test(v)) return v;
    throw bad();
  }
  if (type === "Float64") {
    if (typeof v === "number" && Number.isFinite(v)) return `toFloat64(${v})`;
    throw bad();
  }
  if (type === "String") {
    if (typeof v !== "string") throw bad();
    return quoteString(v);
  }
  throw new Error(`query parameter ${name} has unsupported type ${type}`);
}

/** Replaces {name:Type} placeholders with checked literals (see the file comment). */
export function bind(query: string, params: Params = {}): string {
  return query.replace(/\{([A-Za-z_][A-Za-z0-9_]*):([A-Za-z0-9()]+)\}/g, (_m, name: string, type: string) => {
    if (!(name in params)) throw new Error(`query parameter ${name} is missing`);
    return literal(type, params[name]!, name);
  });
}

export function parseClickhouseUrl(raw: string): { url: string; username: string; password: string; database: string } {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`CLICKHOUSE_URL=${JSON.stringify(raw)} is not a URL (e.g. http://127.0.0.1:8123/servermind)`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`CLICKHOUSE_URL must be http:// or https://, not ${u.protocol}`);
  const database = checkIdentifier(decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, "")) || "servermind", "CLICKHOUSE_URL database");
  const username = decodeURIComponent(u.username) || "default";
  const password = decodeURIComponent(u.password);
  return { url: `${u.protocol}//${u.host}`, username, password, database };
}

export function createClickhouse(o: ClickhouseOptions): Clickhouse {
  const p = parseClickhouseUrl(o.url);
  const client = createClient({
    url: p.url,
    username: p.username,
    password: p.password,
    request_timeout: o.requestTimeoutMs ?? 60_000,
    // 18.16 answers compressed requests fine, but plain text keeps old servers and proxies simple.
    compression: { request: false, response: false },
    max_open_connections: 4,
    log: { level: ClickHouseLogLevel.OFF }, // errors reach our callers; the client must not print them too
  });
  return {
    client,
    database: p.database,
    async exec(query, params) {
      await client.command({ query: bind(query, params) });
    },
    async rows<T>(query: string, params?: Params) {
      const r = await client.query({ query: bind(query, params), format: "JSONEachRow" });
      return (await r.json()) as T[];
    },
    async insertRowBinary(table, columns, bytes) {
      for (const c of columns) checkIdentifier(c, "column");
      const r = await client.exec({
        query: `insert into ${table} (${columns.join(", ")}) format RowBinary`,
        values: Readable.from([bytes], { objectMode: false }),
      });
      r.stream.resume();
      await new Promise<void>((ok, fail) => {
        r.stream.once("end", ok);
        r.stream.once("error", fail);
      });
    },
    async ping() {
      return (await client.ping()).success;
    },
    close: () => client.close(),
  };
}
