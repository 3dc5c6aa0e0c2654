/**
 * Fleet inventory search over the rows migration 505 keeps beside each host's inventory
 * document: which hosts have a package (with a version constraint, compared as the host's
 * package manager orders versions), a listening port, a user, pending security updates; and one
 * host's package list, filtered by name on the server.
 *
 * Host scope: every function takes the caller's HostScope (or a ScopedHost), and the scope is a
 * condition of the SQL itself, so an out-of-scope host is never read, counted or named.
 */
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";
import { inScope } from "../store/postgres/queries-console.ts";
import type { InventoryQuery } from "./query-parse.ts";
import { packageFormat, satisfies, type PackageFormat } from "./version.ts";

export interface InventoryMatch {
  id: number;
  hostname: string;
  os: string;
  /** What matched on this host: "nginx 1.22.1-9 (amd64)", "tcp 0.0.0.0:443", "postgres (uid 105)", "3 security: openssl, …". */
  items: string[];
  /** Matching items on this host; more than items.length when the caller asked for the first few only (itemsPerHost). */
  count: number;
  format: PackageFormat;
}

export interface InventoryResult {
  hosts: InventoryMatch[];
  /** Hosts in scope that report an inventory (the denominator of "N of M hosts"). */
  hostsWithInventory: number;
  /** Matching items over all listed hosts (packages, sockets, users or pending security updates). */
  items: number;
}

/** At most this many hosts are listed; the counts say when there were more. */
export const MAX_HOSTS = 5000;

function likePattern(glob: string): string {
  return glob.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, "%");
}

async function hostsWithInventory(sql: Sql, scope: HostScope): Promise<number> {
  const [r] = await sql`select count(*)::int as n from inventory_hosts h join agents a on a.id = h.agent_id where a.revoked_at is null ${inScope(sql, scope)}`;
  return r!.n;
}

interface Row {
  agent_id: string | number;
  hostname: string;
  os_name: string | null;
  os_id: string | null;
  updates_source: string | null;
}

/** Runs a question over the hosts in `scope` (revoked hosts are left out). */
export async function searchInventory(sql: Sql, scope: HostScope, q: InventoryQuery, o: { itemsPerHost?: number } = {}): Promise<InventoryResult> {
  const total = await hostsWithInventory(sql, scope);
  const byHost = new Map<number, InventoryMatch>();
  const add = (r: Row, item: string) => {
    const id = Number(r.agent_id);
    let m = byHost.get(id);
    if (!m) {
      m = { id, hostname: r.hostname, os: r.os_name ?? "", items: [], count: 0, format: packageFormat(r.os_id, r.updates_source) };
      byHost.set(id, m);
    }
    m.items.push(item);
    m.count++;
  };
  const hostCols = sql`a.id as agent_id, a.hostname, h.os_name, h.os_id, h.updates_source`;
  const hostJoin = sql`join agents a on a.id = x.agent_id left join inventory_hosts h on h.agent_id = x.agent_id`;
  let securityTotal = 0;
  const live = sql`a.revoked_at is null ${inScope(sql, scope)}`;

  if (q.kind === "package") {
    const nameCond = q.glob ? sql`x.name like ${likePattern(q.name)}` : sql`x.name = ${q.name}`;
    // Hosts are ordered by name once (a few thousand), and the matching packages by that rank:
    // sorting 130,000 rows of a broad glob by the hostname's collation took most of its time
    // (bench:inventory); the package name is collate "C", cheap to sort.
    const ranked = sql`(select a.id, a.hostname, row_number() over (order by a.hostname, a.id) as rk from agents a where ${live})`;
    if (!q.op) {
      // no version to compare: each host's matches formatted and gathered in the database, one
      // row per host, only the first `itemsPerHost` of them when asked (the page lists 20 a host)
      // with their count; still at most 200,000 packages in all (cut below)
      const per = o.itemsPerHost ? Math.max(1, Math.trunc(o.itemsPerHost)) : 0;
      const rows = await sql<Array<Row & { items: string[]; n: number }>>`
        select r.id as agent_id, r.hostname, h.os_name, h.os_id, h.updates_source, ${per ? sql`m.items[1:${per}]` : sql`m.items`} as items, m.n
        from (select x.agent_id, count(*)::int as n, array_agg(x.name || ' ' || x.version || case when x.arch <> '' then ' (' || x.arch || ')' else '' end
                order by x.name, x.arch collate "C") as items
              from inventory_packages x where ${nameCond} and x.agent_id in (select id from ${ranked} s) group by x.agent_id) m
          join ${ranked} r on r.id = m.agent_id left join inventory_hosts h on h.agent_id = m.agent_id
        order by r.rk limit ${MAX_HOSTS + 1}`;
      let budget = 200_000;
      for (const r of rows) {
        if (budget <= 0) break;
        for (const item of r.items.slice(0, budget)) add(r, item);
        const m = byHost.get(Number(r.agent_id));
        if (m) m.count = Math.min(r.n, budget);
        budget -= r.n;
      }
    } else {
      const rows = await sql<Array<Row & { name: string; version: string; arch: string }>>`
        select r.id as agent_id, r.hostname, h.os_name, h.os_id, h.updates_source, x.name, x.version, x.arch
        from inventory_packages x join ${ranked} r on r.id = x.agent_id left join inventory_hosts h on h.agent_id = x.agent_id
        where ${nameCond} order by r.rk, x.name, x.arch collate "C" limit 200000`;
      for (const r of rows) {
        const format = packageFormat(r.os_id, r.updates_source);
        if (!satisfies(format, r.version, q.op, q.version!)) continue;
        add(r, `${r.name} ${r.version}${r.arch ? ` (${r.arch})` : ""}`);
      }
    }
  } else if (q.kind === "port") {
    const rows = await sql<Array<Row & { proto: string; address: string; port: number }>>`
      select ${hostCols}, x.proto, x.address, x.port from inventory_ports x ${hostJoin}
      where x.port = ${q.port} and ${live}
        ${q.proto ? sql`and (x.proto = ${q.proto} or x.proto = ${`${q.proto}6`})` : sql``}
        ${q.address ? sql`and x.address = ${q.address}` : sql``}
      order by a.hostname, a.id, x.proto, x.address limit 200000`;
    for (const r of rows) add(r, `${r.proto} ${r.address.includes(":") ? `[${r.address}]` : r.address}:${r.port}`);
  } else if (q.kind === "user") {
    const rows = await sql<Array<Row & { name: string; uid: string | number | null; shell: string }>>`
      select ${hostCols}, x.name, x.uid, x.shell from inventory_users x ${hostJoin}
      where x.name = ${q.name} and ${live} order by a.hostname, a.id limit 200000`;
    for (const r of rows) add(r, `${r.name}${r.uid === null ? "" : ` (uid ${r.uid}`}${r.shell ? `, ${r.shell}` : ""}${r.uid === null ? "" : ")"}`);
  } else {
    const rows = await sql<Array<Row & { security_updates: number; other_updates: number | null; security_packages: string[] }>>`
      select ${hostCols}, x.security_updates, x.other_updates, x.security_packages from inventory_hosts x
        join agents a on a.id = x.agent_id left join inventory_hosts h on h.agent_id = x.agent_id
      where x.security_updates > 0 and ${live}
        ${q.name ? sql`and ${q.name} = any(x.security_packages)` : sql``}
      order by x.security_updates desc, a.hostname, a.id limit ${MAX_HOSTS}`;
    for (const r of rows) {
      securityTotal += r.security_updates;
      const names = r.security_packages.slice(0, 20);
      const more = r.security_updates - names.length;
      add(r, `${r.security_updates} security${r.other_updates ? ` + ${r.other_updates} other` : ""}${names.length ? `: ${names.join(", ")}${more > 0 ? ` and ${more} more` : ""}` : ""}`);
    }
  }
  const hosts = [...byHost.values()];
  const items = q.kind === "updates" ? securityTotal : hosts.reduce((n, h) => n + h.count, 0);
  return { hosts: hosts.slice(0, MAX_HOSTS), hostsWithInventory: total, items };
}

export interface PackageRow {
  name: string;
  version: string;
  arch: string;
}

export interface PackagePage {
  rows: PackageRow[];
  /** packages whose name matches the filter */
  matched: number;
  /** packages installed on the host */
  total: number;
}

/** One host's packages whose name contains `search` (case-insensitive), by name, at most `limit`. */
export async function hostPackages(sql: Sql, host: ScopedHost, o: { search: string; limit: number }): Promise<PackagePage> {
  const filter = o.search ? sql`and name ilike ${`%${o.search.replace(/[\\%_]/g, (c) => `\\${c}`)}%`}` : sql``;
  const [rows, [counts]] = await Promise.all([
    sql<PackageRow[]>`select name, version, arch from inventory_packages where agent_id = ${host.id} ${filter} order by name, arch limit ${o.limit}`,
    sql`select (select count(*)::int from inventory_packages where agent_id = ${host.id} ${filter}) as matched,
      (select count(*)::int from inventory_packages where agent_id = ${host.id}) as total`,
  ]);
  return { rows: [...rows], matched: counts!.matched, total: counts!.total };
}
