/**
 * Loaded once before the test run (bunfig.toml). Starts the shared embedded PostgreSQL (or
 * checks DATABASE_URL) before any test file's hooks run, so their default timeouts do not have
 * to cover initdb on a busy machine, and stops it when the run ends.
 *
 * It starts at module scope, not in a beforeAll hook: when a hook or test times out, bun kills
 * every process spawned inside the hooks and tests of the run so far ("killed N dangling
 * processes"), which took the shared PostgreSQL down with the first slow hook and failed every
 * later file with "the database system is shutting down". Processes started here are not
 * tracked.
 */
import { afterAll } from "bun:test";
import { startTestServerDatabase, stopTestServer } from "./db.ts";
import { generateAuditKeys, useAuditKeys } from "../../src/audit/keys.ts";
import { reportLeakedClusters, runtimeClusters } from "./runtime-leaks.ts";

// Servers that tests start from src/main.ts do not build agent binaries in the background at
// start (each would begin six builds, and the cross-compiled ones download their Bun runtime);
// the test of that feature turns it on for its own server.
process.env.SERVERMIND_AGENT_BUILD ??= "false";
// The notification receivers tests start (webhook, SMTP) listen on loopback, which a server
// refuses to send to unless an operator allows it (src/alerts/destinations.ts); the test of that
// rule sets its own policy.
process.env.SERVERMIND_NOTIFY_ALLOW_NETWORKS ??= "127.0.0.0/8,::1";

// Clusters a root run leaves in /var/lib/servermind (data directories user postgres cannot
// reach): noted now, reported when the run ends (a failure under CI=true, see runtime-leaks.ts).
const clustersBefore = runtimeClusters();

await startTestServerDatabase();

afterAll(async () => {
  await stopTestServer();
  reportLeakedClusters(clustersBefore);
});

// The audit chain key and checkpoint signing key of this test run: in memory, never under ./data.
useAuditKeys(generateAuditKeys());
