/** Starts the real server (real TLS, real PostgreSQL) on 127.0.0.1 for a test file. */
import { loadConfig, type Config } from "../../src/config.ts";
import { startServer, type RunningServer } from "../../src/server.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { ensurePartitions, timeSeriesTables } from "../../src/store/postgres/partitions.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { testDatabase, type TestDb } from "./db.ts";
import { generateKeyPairSync, createPublicKey, type KeyObject } from "node:crypto";
import { startClusterBus } from "../../src/cluster/bus.ts";
import { commandDispatcher, startCommandReplies } from "../../src/cluster/command-replies.ts";
import { storeCommandOutput } from "../../src/cluster/command-output.ts";

let cert: ReturnType<typeof createSelfSigned> | undefined;

/** The /metrics bearer token of test servers; scrapes send `metricsAuth`. */
export const TEST_METRICS_TOKEN = "test-metrics-token";
export const metricsAuth = { authorization: `Bearer ${TEST_METRICS_TOKEN}` };

export interface TestServer extends RunningServer {
  db: TestDb;
  config: Config;
  token(): Promise<string>;
  /** The server's command key (agents get its public half at enrollment). */
  commandKey: KeyObject;
  /** Sends a signed command to an agent's stream and waits for the answer (with `commands: true`). */
  dispatch?: (agentId: number, command: { id: string }) => Promise<unknown>;
  close(): Promise<void>;
}

export interface TestServerOptions {
  /** Wire the cluster bus and command replies as src/main.ts does, so commands reach agents. */
  commands?: boolean;
}

export async function startTestServer(env: Record<string, string> = {}, opts: TestServerOptions = {}): Promise<TestServer> {
  const db = await testDatabase();
  for (const t of timeSeriesTables(3, 3)) await ensurePartitions(db.sql, t);
  cert ??= createSelfSigned(["127.0.0.1", "localhost"]);
  const config = loadConfig({ SERVERMIND_HOST: "127.0.0.1", SERVERMIND_PORT: "0", SERVERMIND_METRICS_TOKEN: TEST_METRICS_TOKEN, ...env });
  const commandKey = generateKeyPairSync("ed25519").privateKey;
  const publicB64 = Buffer.from(createPublicKey(commandKey).export({ format: "jwk" }).x!, "base64url").toString("base64");
  const s = startServer({ config, sql: db.sql, commandKey: publicB64, cert: { cert: cert.certPem, key: cert.keyPem, fingerprint: cert.fingerprint, generated: true, path: "" } });
  let stopCommands = async () => {};
  let dispatch: TestServer["dispatch"];
  if (opts.commands) {
    const bus = await startClusterBus({ sql: db.sql, streams: s.ingest.deps.streams!, directory: s.ingest.deps.directory });
    const replies = await startCommandReplies(db.sql);
    s.ingest.deps.onCommandResult = (agentId, id, result) => replies.deliver(agentId, id, result);
    s.ingest.deps.onCommandOutput = (agentId, id, seq, lines) => storeCommandOutput(db.sql, agentId, id, seq, lines);
    dispatch = commandDispatcher(bus, replies, 30_000);
    stopCommands = async () => {
      await replies.stop();
      await bus.stop();
    };
  }
  return Object.assign(s, {
    db,
    config,
    commandKey,
    dispatch,
    token: async () => (await createActivationToken(db.sql, { createdBy: "test" })).token,
    async close() {
      await stopCommands();
      await s.stop();
      await db.drop();
    },
  });
}
