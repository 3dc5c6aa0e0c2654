/**
 * Composition root: read config, open the database, start partition upkeep, the console's
 * background work and the server; on SIGINT/SIGTERM stop them in reverse order.
 */
import { loadConfig } from "./config.ts";
import { openDatabase } from "./db.ts";
import { loadOrCreateCert } from "./tls/certs.ts";
import { startServer } from "./server.ts";
import { startPartitionUpkeep, timeSeriesTables } from "./store/postgres/partitions.ts";
import { consolePlugin, createServices, startConsole } from "./web/plugin.ts";
import { consoleSsoDeps } from "./web/sso/wiring.ts";
import { createSso } from "./auth/sso/routes.ts";
import { loadSsoConfig } from "./auth/sso/config.ts";
import { loadClickhouseConfig, startClickhouseTier } from "./store/clickhouse/tier.ts";
import { createClickhouseQueries } from "./store/clickhouse/queries.ts";
import { createQueryRouter, routedRangeStore } from "./store/query-router.ts";
import { postgresRangeStore } from "./store/range.ts";
import { startClusterBus } from "./cluster/bus.ts";
import { createIngestMetrics } from "./metrics/registry.ts";
import { commandDispatcher, startCommandReplies } from "./cluster/command-replies.ts";
import { loadOrCreateCommandKey } from "./security/command-key.ts";
import { startSecurityJobs } from "./security/jobs.ts";
import type { CommandDeps } from "./security/issue.ts";
import { audit } from "./audit/audit.ts";
import { downloadsPlugin } from "./downloads/routes.ts";
import { resolve } from "node:path";

async function main(): Promise<void> {
  const config = loadConfig();
  const chConfig = loadClickhouseConfig();
  const db = await openDatabase(config);
  const upkeep = startPartitionUpkeep(db.sql, timeSeriesTables(config.retentionMetricsDays, config.retentionLogsDays));
  await upkeep.ready;
  const cert = loadOrCreateCert({ certFile: config.tlsCert, keyFile: config.tlsKey, dataDir: config.dataDir, names: config.tlsNames });
  if (cert.generated) console.log(`generated a self-signed certificate: ${cert.path}`);
  const metrics = createIngestMetrics();
  const extraMetrics: Array<{ render(): string }> = [];
  const tier = chConfig.url
    ? await startClickhouseTier({
        sql: db.sql, url: chConfig.url, maxBatches: chConfig.shipBatches,
        retentionMetricsDays: chConfig.retentionDays, retentionLogsDays: chConfig.retentionDays, writeErrors: metrics.writeErrors,
      })
    : undefined;
  if (tier) {
    extraMetrics.push(...tier.metrics, ...tier.gauges);
    console.log("ClickHouse tier on: committed metrics and logs are shipped from PostgreSQL");
  }
  let fleetSize = 0;
  const countFleet = async () => {
    fleetSize = Number((await db.sql`select count(*)::int as n from agents where revoked_at is null`)[0]!.n);
  };
  await countFleet();
  const fleetTimer = setInterval(() => void countFleet().catch(() => {}), 60_000);
  const router = createQueryRouter({
    postgres: postgresRangeStore(db.sql),
    clickhouse: tier && createClickhouseQueries(tier.ch, db.sql),
    lagSeconds: () => tier?.shipper.lagSeconds ?? 0,
    pgMetricsDays: config.retentionMetricsDays,
    pgLogsDays: config.retentionLogsDays,
    fleetSize: () => fleetSize,
  });
  // Security: commands to agents are signed with the server's command key, travel down the
  // agent's stream through whichever node holds it, and their answers come back the same way.
  const commandKey = loadOrCreateCommandKey(config.dataDir);
  const replies = await startCommandReplies(db.sql);
  let bus: Awaited<ReturnType<typeof startClusterBus>> | undefined;
  const commandDeps: CommandDeps = {
    sql: db.sql,
    commandKey: commandKey.privateKey,
    audit: (e) => audit(db.sql, e).then(() => {}),
    dispatch: (agentId, command) => commandDispatcher(bus!, replies)(agentId, command),
  };
  const consoleDeps = {
    sql: db.sql, config, dataDir: config.dataDir, serverFingerprint: cert.fingerprint,
    ranges: routedRangeStore(router), security: { commandKey: commandDeps.commandKey, dispatch: commandDeps.dispatch },
  };
  const consoleRuntime = await startConsole(consoleDeps);
  const consoleServices = createServices(consoleDeps);
  // Enterprise sign-in (OIDC, SAML, LDAP): redirect URIs and the SAML entity ID use the public URL.
  if (!process.env.SERVERMIND_PUBLIC_URL) console.log(`SSO: SERVERMIND_PUBLIC_URL is not set; identity providers will be sent to https://localhost:${config.port}`);
  const sso = createSso(consoleSsoDeps(consoleServices, loadSsoConfig(process.env, `https://localhost:${config.port}`)));
  extraMetrics.push(...sso.metrics);
  const downloads = downloadsPlugin({ distDir: resolve(process.env.SERVERMIND_AGENT_DIST || "dist/agent"), certPem: cert.cert });
  const server = startServer({
    config, sql: db.sql, cert, metrics, extraMetrics, commandKey: commandKey.publicKeyB64,
    plugins: [consolePlugin(consoleDeps, consoleServices), sso.plugin, downloads],
  });
  bus = await startClusterBus({ sql: db.sql, streams: server.ingest.deps.streams!, directory: server.ingest.deps.directory });
  server.ingest.deps.onCommandResult = (agentId, id, result) => replies.deliver(agentId, id, result);
  extraMetrics.push(...bus.metrics);
  const securityJobs = startSecurityJobs(db.sql, commandDeps);
  server.ingest.deps.onStored = securityJobs.onStored;
  console.log(`ServerMind listening on ${server.url} (TLS 1.3; HTTP/1.1, HTTP/2${config.http3 ? ", HTTP/3" : ""}, WSS)`);
  console.log(`LZ4 frames decoded by ${server.ingest.lz4}`);
  console.log(`server certificate SHA-256 fingerprint (pin it in agents): ${cert.fingerprint}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    const steps: Array<[string, () => unknown]> = [
      ["security jobs", () => securityJobs.stop()],
      ["command replies", () => replies.stop()],
      ["cluster bus", () => bus!.stop()],
      ["server", () => server.stop()],
      ["sso (LDAP pools)", () => sso.close()],
      ["ClickHouse tier", () => tier?.stop()],
      ["console", () => consoleRuntime.stop()],
      ["partition upkeep", () => upkeep.stop()],
      ["database", () => db.close()],
    ];
    clearInterval(fleetTimer);
    let failed = false;
    for (const [name, step] of steps) {
      try {
        await step();
      } catch (e) {
        failed = true;
        console.error(`stopping ${name} failed: ${e instanceof Error ? e.message : e}`);
      }
    }
    process.exit(failed ? 1 : 0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

main().catch((e) => {
  console.error(`servermind: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
