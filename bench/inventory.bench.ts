/**
 * Fleet inventory search latency (npm run bench:inventory [-- --quick]) at fleet size: `hosts`
 * hosts (2,000) × `packages` packages each (2,000), 20 listening sockets and 40 users per host,
 * pending updates on some. The documents go into inventory_current as the ingest writer stores
 * them; migration 505's trigger keeps the row tables the search reads. Reports, as one JSON line,
 * median and p95 of `runs` runs of:
 *   - package_common_constraint: a package every host has, with a version constraint (every
 *     host's version compared in the server, dpkg order)
 *   - package_rare, package_glob, port, user, security_updates: the other questions
 *   - package_glob_rows_to_server: the glob in the shape searchInventory used before (every
 *     matching row to the server, grouped there), and package_glob_constraint: a glob with a
 *     version constraint (which still takes that shape: versions are compared in the server)
 *   - package_scoped: the common package for a user scoped to 10 % of the hosts
 *   - host_packages_filter: one host's package list filtered by name (the host page's search)
 *   - baseline_json_scan: the same common-package question answered from the JSON documents
 *     (jsonb_array_elements over every document), and baseline_gin_containment with a GIN
 *     jsonb_path_ops index on the documents (`data @> '{"packages":[{"name":…}]}'`), built here
 *     only for the comparison
 * and the write side: the time to store one changed inventory document (trigger included),
 * against the same write without the trigger. --quick: 500 hosts, 5 runs.
 */
import { HostScope } from "../src/auth/host-scope.ts";
import { hostPackages, searchInventory } from "../src/inventory/queries.ts";
import { parseInventoryQuery, type InventoryQuery } from "../src/inventory/query-parse.ts";
import { findHost } from "../src/store/postgres/queries-console.ts";
import { arg, benchDatabase, environment, flag, percentile, round, timeRuns } from "./support.ts";

const quick = flag("quick");
const HOSTS = Number(arg("hosts", quick ? "500" : "2000"));
const PACKAGES = Number(arg("packages", "2000"));
const RUNS = Number(arg("runs", quick ? "5" : "20"));
const log = (s: string) => console.error(`[bench] ${s}`);

const time = timeRuns;

function q(kind: string, text: string): InventoryQuery {
  const p = parseInventoryQuery(kind, text);
  if (!p.ok) throw new Error(p.problem);
  return p.query;
}

async function main() {
  const db = await benchDatabase({ prefix: "servermind-invbench-" });
  const { sql } = db;
  log(`${HOSTS} hosts`);
  await sql`insert into agents (hostname, public_key, last_seen, tags)
    select 'host-' || lpad(g::text, 5, '0'), decode(lpad(to_hex(g), 64, '0'), 'hex'), now(), array[case when g % 10 = 0 then 'group:web' else 'group:other' end]
    from generate_series(1, ${HOSTS}) g`;
  // A document as the agent sends it: a pool of 3,000 package names, each host holding
  // PACKAGES of them from its own offset; openssl on every host; "rare-tool" on every 400th.
  const doc = (id: ReturnType<typeof sql>) => sql`jsonb_build_object(
      'os', jsonb_build_object('id', 'debian', 'name', 'Debian GNU/Linux', 'version', '12', 'prettyName', 'Debian GNU/Linux 12 (bookworm)'),
      'hostname', 'h' || ${id},
      'packages', (select jsonb_agg(jsonb_build_object('name', case when i = 1 then 'openssl' when i = 2 and ${id} % 400 = 0 then 'rare-tool' else 'pkg-' || lpad(((${id} * 37 + i) % 3000)::text, 4, '0') end,
          'version', case when i = 1 then '3.0.' || (${id} % 16) || '-1~deb12u' || (${id} % 3) else '1.' || (i % 20) || '.' || (${id} % 7) || '-' || (i % 5) || '+deb12u1' end, 'arch', 'amd64'))
        from generate_series(1, ${PACKAGES}) i),
      'ports', (select jsonb_agg(jsonb_build_object('proto', case when p % 4 = 0 then 'udp' else 'tcp' end, 'address', case when p % 2 = 0 then '0.0.0.0' else '127.0.0.1' end, 'port', case when p = 1 then 443 else 1000 + p + (${id} % 50) end, 'uid', 0))
        from generate_series(1, 20) p),
      'users', (select jsonb_agg(jsonb_build_object('name', case when u = 1 then 'root' when u = 2 and ${id} % 5 = 0 then 'postgres' else 'svc' || u end, 'uid', u, 'gid', u, 'home', '/home/u' || u, 'shell', '/bin/sh'))
        from generate_series(1, 40) u),
      'updates', jsonb_build_object('status', 'ok', 'source', 'apt', 'security', ${id} % 4, 'other', ${id} % 9, 'total', ${id} % 4 + ${id} % 9,
        'securityPackages', case when ${id} % 4 = 0 then '[]'::jsonb else jsonb_build_array('openssl', 'libssl3', 'curl') end))`;
  const t0 = performance.now();
  const BATCH = 100;
  for (let from = 1; from <= HOSTS; from += BATCH) {
    await sql`insert into inventory_current (agent_id, collected_at, hash, data)
      select a.id, now(), decode(md5(a.id::text), 'hex'), ${doc(sql`a.id`)} from agents a where a.id between ${from} and ${from + BATCH - 1}`;
    if ((from - 1) % 500 === 0) log(`inventories stored: ${Math.min(from + BATCH - 1, HOSTS)} / ${HOSTS} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  const loadSeconds = round((performance.now() - t0) / 1000, 1);
  await sql`vacuum analyze`;
  const [{ n: packageRows }] = await sql`select count(*)::int as n from inventory_packages`;
  const [{ mb }] = await sql`select round((pg_total_relation_size('inventory_packages') / 1048576.0)::numeric, 1)::float8 as mb`;
  log(`${packageRows} package rows (${mb} MB with indexes) in ${loadSeconds} s`);

  const ALL = HostScope.system("bench");
  // a scope as the guard builds it for a role scoped to group:web (10 % of the hosts)
  const web = HostScope.forPermission([{ permissions: ["inventory.view"], tags: ["group:web"] }], "inventory.view");
  const check = await searchInventory(sql, ALL, q("package", "openssl >= 3.0.8"));
  const host = (await findHost(sql, ALL, 1))!;

  if (flag("explain")) {
    // where a broad glob's time goes: the statement in the database, and the whole search
    const plan = await sql`explain (analyze, buffers) select a.id, a.hostname, x.name, x.version, x.arch from inventory_packages x join agents a on a.id = x.agent_id
      where x.name like 'pkg-29%' and a.revoked_at is null order by a.hostname, a.id, x.name, x.arch limit 200000`;
    log(plan.map((r) => r["QUERY PLAN"]).join("\n"));
    const dbOnly = await time(RUNS, () => sql`select count(*) from (select a.id, a.hostname, x.name, x.version, x.arch from inventory_packages x join agents a on a.id = x.agent_id
      where x.name like 'pkg-29%' and a.revoked_at is null order by a.hostname, a.id, x.name, x.arch limit 200000) s`);
    const bound = await time(RUNS, () => sql`select count(*) from inventory_packages x where x.name like ${"pkg-29%"}`);
    const rowsOnly = await time(RUNS, () => sql`select x.agent_id, x.name, x.version, x.arch from inventory_packages x where x.name like 'pkg-29%'`);
    const search = await time(RUNS, () => searchInventory(sql, ALL, q("package", "pkg-29*")));
    log(`glob: statement in the database ${JSON.stringify(dbOnly)}, count with a bound pattern ${JSON.stringify(bound)}, rows to the client ${JSON.stringify(rowsOnly)}, searchInventory ${JSON.stringify(search)}`);
  }
  const results = {
    package_common_constraint: await time(RUNS, () => searchInventory(sql, ALL, q("package", "openssl >= 3.0.8"))),
    package_rare: await time(RUNS, () => searchInventory(sql, ALL, q("package", "rare-tool"))),
    package_glob: await time(RUNS, () => searchInventory(sql, ALL, q("package", "pkg-29*"))),
    // as the page asks: the first 20 matches a host, with the count
    package_glob_page: await time(RUNS, () => searchInventory(sql, ALL, q("package", "pkg-29*"), { itemsPerHost: 20 })),
    // the glob as searchInventory asked it before (one row per matching package to the server,
    // grouped there): the shape it still uses when versions are compared
    package_glob_rows_to_server: await time(RUNS, async () => {
      const rows = await sql`select a.id as agent_id, a.hostname, h.os_name, h.os_id, h.updates_source, x.name, x.version, x.arch
        from inventory_packages x join agents a on a.id = x.agent_id left join inventory_hosts h on h.agent_id = x.agent_id
        where x.name like 'pkg-29%' and a.revoked_at is null order by a.hostname, a.id, x.name, x.arch limit 200000`;
      const byHost = new Map<number, string[]>();
      for (const r of rows) {
        const id = Number(r.agent_id);
        if (!byHost.has(id)) byHost.set(id, []);
        byHost.get(id)!.push(`${r.name} ${r.version}${r.arch ? ` (${r.arch})` : ""}`);
      }
      return byHost;
    }),
    package_glob_constraint: await time(RUNS, () => searchInventory(sql, ALL, q("package", "pkg-29* >= 1.5"))),
    package_scoped: await time(RUNS, () => searchInventory(sql, web, q("package", "openssl >= 3.0.8"))),
    port: await time(RUNS, () => searchInventory(sql, ALL, q("port", "443/tcp"))),
    user: await time(RUNS, () => searchInventory(sql, ALL, q("user", "postgres"))),
    security_updates: await time(RUNS, () => searchInventory(sql, ALL, q("updates", ""))),
    host_packages_filter: await time(RUNS, () => hostPackages(sql, host, { search: "pkg-1", limit: 500 })),
    baseline_json_scan: await time(Math.min(RUNS, 5), () => sql`select a.id, e->>'version' from inventory_current i join agents a on a.id = i.agent_id,
      jsonb_array_elements(i.data->'packages') e where e->>'name' = 'openssl'`),
  };
  log("GIN jsonb_path_ops index for the baseline");
  const g0 = performance.now();
  await sql`create index inventory_current_gin on inventory_current using gin (data jsonb_path_ops)`;
  const ginBuildSeconds = round((performance.now() - g0) / 1000, 1);
  await sql`analyze inventory_current`;
  const gin = {
    baseline_gin_containment_common: await time(Math.min(RUNS, 5), () => sql`select agent_id, jsonb_path_query(data, '$.packages[*] ? (@.name == "openssl").version') from inventory_current
      where data @> '{"packages":[{"name":"openssl"}]}'`),
    baseline_gin_containment_rare: await time(RUNS, () => sql`select agent_id from inventory_current where data @> '{"packages":[{"name":"rare-tool"}]}'`),
  };
  await sql`drop index inventory_current_gin`;

  // the write side: one changed document (2,000 packages), with and without the trigger; the
  // same package list (only pending updates changed) and every version changed (an upgrade of all)
  const [{ data }] = await sql`select data from inventory_current where agent_id = 2`;
  let round_ = 0;
  const write = (allChanged: boolean) => () => {
    round_++;
    const d = allChanged
      ? { ...data, packages: data.packages.map((p: { version: string }) => ({ ...p, version: `${p.version}.${round_}` })) }
      : { ...data, updates: { ...data.updates, other: round_ } };
    return sql`update inventory_current set data = ${sql.json(d)}, hash = ${Buffer.from(String(round_))} where agent_id = 2`;
  };
  const writes = {
    write_one_inventory_same_packages: await time(RUNS, write(false)),
    write_one_inventory_all_packages_changed: await time(RUNS, write(true)),
  };
  await sql`alter table inventory_current disable trigger inventory_current_index`;
  const writesWithout = {
    write_one_inventory_same_packages_no_index: await time(RUNS, write(false)),
    write_one_inventory_all_packages_changed_no_index: await time(RUNS, write(true)),
  };
  await sql`alter table inventory_current enable trigger inventory_current_index`;

  await db.close();
  console.log(JSON.stringify({
    bench: "inventory", ...environment(), quick, hosts: HOSTS, packages_per_host: PACKAGES, runs: RUNS,
    load_seconds: loadSeconds, package_rows: packageRows, package_table_mb: mb, gin_build_seconds: ginBuildSeconds,
    common_matches: check.hosts.length,
    ...results, ...gin,
    ...writes, ...writesWithout,
  }));
}

await main();
