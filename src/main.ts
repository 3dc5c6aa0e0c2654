/**
 * Composition root: read config, open the database, start partition upkeep, the console's
 * background work and the server; on SIGINT/SIGTERM stop them in reverse order.
 */
import "./allocator-boot.ts"; // first: it may restart the process with the allocator's setting
import { loadConfig } from "./config.ts";
import { openDatabase } from "./db.ts";
import { loadOrCreateCert } from "./tls/certs.ts";
import { startServer } from "./server.ts";
import { startPartitionUpkeep, timeSeriesTables } from "./store/postgres/partitions.ts";
import { startRollups } from "./store/postgres/rollups.ts";
import { consolePlugin, createServices, startConsole } from "./web/plugin.ts";
import { mcpPlugin } from "./web/mcp/plugin.ts";
import { consoleSsoDeps } from "./web/sso/wiring.ts";
import { createSso } from "./auth/sso/routes.ts";
import { loadSsoConfig } from "./auth/sso/config.ts";
import { loadClickhouseConfig, startClickhouseTier } from "./store/clickhouse/tier.ts";
import { createClickhouseQueries } from "./store/clickhouse/queries.ts";
import { clickhouseLogArchive } from "./logs/archive.ts";
import { createQueryRouter, routedRangeStore } from "./store/query-router.ts";
import { postgresRangeStore } from "./store/range.ts";
import { startClusterBus } from "./cluster/bus.ts";
import { createIngestMetrics } from "./metrics/registry.ts";
import { commandDispatcher, startCommandReplies } from "./cluster/command-replies.ts";
import { storeCommandOutput } from "./cluster/command-output.ts";
import { loadOrCreateCommandKey } from "./security/command-key.ts";
import { startSecurityJobs } from "./security/jobs.ts";
import type { CommandDeps } from "./security/issue.ts";
import { audit } from "./audit/audit.ts";
import { loadAuditKeys, useAuditKeys } from "./audit/keys.ts";
import { scheduleCheckpoints } from "./audit/checkpoint.ts";
import { downloadsPlugin, pubkeyPin } from "./downloads/routes.ts";
import { startAgentBuilds } from "./downloads/agent-builds.ts";
import { resolve } from "node:path";
import { createLicenseService } from "./license/service.ts";
import { startAlerts } from "./alerts/service.ts";
import { loadScheduleConfig, startSelfBackupSchedule } from "./selfbackup/schedule.ts";
import { startBackupScheduler } from "./backups/scheduler.ts";
import { installCrashPolicy } from "./crash-policy.ts";
import { useDestinationPolicy } from "./alerts/destinations.ts";
import { hostUdpReceiveDefault, udpBufferWarning } from "./http/udp-buffers.ts";

async function main(): Promise<void> {
  const config = loadConfig();
  const chConfig = loadClickhouseConfig();
  const selfBackupSchedule = loadScheduleConfig();
  // the audit chain key and checkpoint signing key, outside PostgreSQL (docs/security.md, "Audit trail")
  useAuditKeys(loadAuditKeys(config.dataDir), config.dataDir);
  const db = await openDatabase(config);
  console.log(`database: migrations as the owner, queries as the least-privilege role ${db.runtimeRole}`);
  // partitions are DDL on tables the owner owns: the owner's small pool creates and drops them
  const upkeep = startPartitionUpkeep(db.ownerSql, timeSeriesTables(config.retentionMetricsDays, config.retentionLogsDays, {
    minuteDays: config.retentionRollup1mDays, tenMinuteDays: config.retentionRollup10mDays, hourDays: config.retentionRollup1hDays,
  }));
  await upkeep.ready;
  // metric rollups for long chart ranges: one node at a time (advisory lock), exactly once; they
  // also compact each closed hour's raw rows, unless the ClickHouse shipper still finds rows by batch
  const rollups = startRollups({ sql: db.sql, rawDays: config.retentionMetricsDays, compact: !chConfig.url });
  const cert = loadOrCreateCert({ certFile: config.tlsCert, keyFile: config.tlsKey, dataDir: config.dataDir, names: config.tlsNames });
  if (cert.generated) console.log(`generated a self-signed certificate: ${cert.path}`);
  const metrics = createIngestMetrics();
  const extraMetrics: Array<{ render(): string }> = [];
  const tier = chConfig.url
    ? await startClickhouseTier({
        // the tier creates its indexes on owner tables (DDL), so it uses the owner's pool
        sql: db.ownerSql, url: chConfig.url, maxBatches: chConfig.shipBatches,
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
    dispatch: (agentId, command, timeoutMs) => commandDispatcher(bus!, replies, timeoutMs)(agentId, command),
  };
  // the license: offline, verified against the vendor key; limits enrollments, never ingest (docs/licensing.md)
  const license = createLicenseService({ sql: db.sql, dataDir: config.dataDir });
  const licenseStatus = await license.refresh();
  console.log(`license: ${licenseStatus.license ? `${licenseStatus.license.licensee} (${licenseStatus.license.id}), ${licenseStatus.seats} seats, expires ${licenseStatus.license.expiresAt}` : `none; community mode, up to ${licenseStatus.seats} agents`}; ${licenseStatus.agents} enrolled`);
  license.start();
  // agent binaries: the ones missing are built in the background, so enrollment works after npm start
  const agentDistDir = resolve(process.env.SERVERMIND_AGENT_DIST || "dist/agent");
  const agentBuilds = startAgentBuilds({ distDir: agentDistDir, targets: config.agentBuildTargets, enabled: config.agentBuild, log: (l) => console.log(l) });
  const consoleDeps = {
    license, agentDistDir, agentBuilds, serverPubkeyPin: pubkeyPin(cert.cert),
    sql: db.sql, config, dataDir: config.dataDir, serverFingerprint: cert.fingerprint,
    ranges: routedRangeStore(router), logArchive: tier && clickhouseLogArchive(tier.ch, config.retentionLogsDays), security: { commandKey: commandDeps.commandKey, dispatch: commandDeps.dispatch },
  };
  const consoleRuntime = await startConsole(consoleDeps);
  const consoleServices = createServices(consoleDeps);
  // Enterprise sign-in (OIDC, SAML, LDAP): redirect URIs and the SAML entity ID use the public URL.
  if (!process.env.SERVERMIND_PUBLIC_URL) console.log(`SERVERMIND_PUBLIC_URL is not set; agents (install.sh) and identity providers will be sent to ${config.publicUrl}`);
  const sso = createSso(consoleSsoDeps(consoleServices, loadSsoConfig(process.env, config.publicUrl)));
  extraMetrics.push(...sso.metrics);
  const downloads = downloadsPlugin({ distDir: agentDistDir, certPem: cert.cert, publicUrl: config.publicUrl });
  const server = startServer({
    config, sql: db.sql, health: db.health, cert, metrics, extraMetrics, commandKey: commandKey.publicKeyB64,
    seats: license.seats,
    plugins: [consolePlugin(consoleDeps, consoleServices), sso.plugin, downloads, mcpPlugin(consoleServices)],
  });
  bus = await startClusterBus({ sql: db.sql, streams: server.ingest.deps.streams!, directory: server.ingest.deps.directory });
  server.ingest.deps.onCommandResult = (agentId, id, result) => replies.deliver(agentId, id, result);
  server.ingest.deps.onCommandOutput = (agentId, id, seq, lines) => storeCommandOutput(db.sql, agentId, id, seq, lines);
  extraMetrics.push(...bus.metrics);
  const securityJobs = startSecurityJobs(db.sql, commandDeps);
  const stopCheckpoints = scheduleCheckpoints(db.sql);
  server.ingest.deps.onStored = securityJobs.onStored;
  // alerts: every node competes for the evaluator lock; the holder evaluates and notifies (docs/alerts.md)
  useDestinationPolicy(config.notifyPolicy);
  const alerts = startAlerts({ sql: db.sql, lockUrl: db.runtimeUrl, box: consoleServices.secrets, local: server.ingest.deps.state, intervalMs: config.alertIntervalMs });
  // backups of ServerMind itself, when SERVERMIND_SELF_BACKUP_DEST is set (docs/operations.md)
  const selfBackup = selfBackupSchedule && startSelfBackupSchedule({ config, sql: db.ownerSql, schedule: selfBackupSchedule });
  // scheduled backup jobs: one scheduler per cluster; the runs go to the hosts as signed commands
  const backupScheduler = startBackupScheduler({
    lockUrl: db.runtimeUrl,
    deps: { sql: db.sql, box: consoleServices.secrets, commandKey: commandDeps.commandKey, dispatch: commandDeps.dispatch, audit: (e) => audit(db.sql, { actor: { type: "system", id: "backup-scheduler", name: "backup scheduler" }, category: "backup", ...e }).then(() => {}) },
  });
  // on a wildcard address, say so: server.url is where this machine reaches it, not all it serves
  const where = config.host === "0.0.0.0" || config.host === "::" ? `all addresses (${config.host}), port ${server.port}: ${server.url} from this machine` : server.url;
  console.log(`ServerMind listening on ${where} (TLS 1.3; HTTP/1.1, HTTP/2${config.http3 ? ", HTTP/3" : ""}, WSS)`);
  console.log(`LZ4 frames decoded by ${server.ingest.lz4}`);
  const udp = udpBufferWarning(config.http3, hostUdpReceiveDefault());
  if (udp) console.error(udp);
  console.log(`server certificate SHA-256 fingerprint (pin it in agents): ${cert.fingerprint}`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping`);
    const steps: Array<[string, () => unknown]> = [
      ["agent builds", () => agentBuilds.stop()],
      ["alerts", () => alerts.stop()],
      ["backup scheduler", () => backupScheduler.stop()],
      ["security jobs", () => securityJobs.stop()],
      ["license", () => license.stop()],
      ["audit checkpoints", () => stopCheckpoints()],
      ["self-backup", () => selfBackup?.stop()],
      ["command replies", () => replies.stop()],
      ["cluster bus", () => bus!.stop()],
      ["server", () => server.stop()],
      ["sso (LDAP pools)", () => sso.close()],
      ["ClickHouse tier", () => tier?.stop()],
      ["console", () => consoleRuntime.stop()],
      ["metric rollups", () => rollups.stop()],
      ["partition upkeep", () => upkeep.stop()],
      ["database", () => db.close()],
    ];
    // a stop that hangs (database frozen, writers wedged) must not keep the process: see stopInOrder
    clearInterval(fleetTimer);
    process.exit(await stopInOrder(steps, config.stopTimeoutMs, () => db.embedded?.kill()));
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

/**
 * Runs the stop steps in order, each for at most STEP_MS (the database, last, gets what is
 * left), all within `totalMs`: SIGTERM finishes in bounded time whatever PostgreSQL does.
 * Frames not committed by then were never acknowledged, so agents resend them. When time runs
 * out, `kill` ends the embedded PostgreSQL at once. Returns the exit code.
 */
async function stopInOrder(steps: Array<[string, () => unknown]>, totalMs: number, kill: () => void): Promise<number> {
  const STEP_MS = Math.min(5000, totalMs / 3);
  const end = Date.now() + totalMs;
  let failed = false;
  for (const [name, step] of steps) {
    const last = name === steps.at(-1)![0];
    const budget = Math.round(Math.max(0, last ? end - Date.now() - 500 : Math.min(STEP_MS, end - Date.now() - 2500)));
    let t: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((r) => (t = setTimeout(() => r("timeout"), budget)));
    try {
      const r = await Promise.race([Promise.resolve().then(step), timedOut]);
      if (r === "timeout") {
        failed = true;
        console.error(`stopping ${name} did not finish within ${budget} ms; going on`);
        if (last) kill();
      }
    } catch (e) {
      failed = true;
      console.error(`stopping ${name} failed: ${e instanceof Error ? e.message : e}`);
    } finally {
      clearTimeout(t);
    }
  }
  return failed ? 1 : 0;
}

installCrashPolicy();

main().catch((e) => {
  console.error(`servermind: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
});
