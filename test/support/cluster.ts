/**
 * Several server nodes for one test: each its own server on its own port (127.0.0.1), its own
 * PostgreSQL pool and cluster bus, all sharing one fresh database, as separate processes would.
 */
import type { Sql } from "postgres";
import { loadConfig } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { createPgClient } from "../../src/store/postgres/client.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { startClusterBus, type ClusterBus } from "../../src/cluster/bus.ts";
import { testDatabase, type TestDb } from "./db.ts";

export interface TestNode {
  name: string;
  server: RunningServer;
  url: string;
  sql: Sql;
  bus: ClusterBus;
}

export interface TestCluster {
  db: TestDb;
  nodes: TestNode[];
  token(): Promise<string>;
  close(): Promise<void>;
}

export async function startTestCluster(n = 2): Promise<TestCluster> {
  const db = await testDatabase();
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  const cert = createSelfSigned(["127.0.0.1", "localhost"]);
  const nodes: TestNode[] = [];
  for (let i = 0; i < n; i++) {
    const sql = createPgClient(db.url, 6);
    const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_HTTP3: "false" });
    const server = startServer({ config, sql, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" } });
    const bus = await startClusterBus({ sql, streams: server.ingest.deps.streams!, directory: server.ingest.deps.directory, nodeId: `node-${i}`, log: () => {} });
    nodes.push({ name: `node-${i}`, server, url: server.url, sql, bus });
  }
  return {
    db,
    nodes,
    token: async () => (await createActivationToken(db.sql, { createdBy: "test" })).token,
    async close() {
      for (const node of nodes.reverse()) {
        await node.bus.stop();
        await node.server.stop();
        await node.sql.end({ timeout: 5 });
      }
      await db.drop();
    },
  };
}
