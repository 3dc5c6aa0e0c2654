/**
 * Loaded once before the test run (bunfig.toml). Starts the shared embedded PostgreSQL (or
 * checks DATABASE_URL) before any test file's hooks run, so their default timeouts do not have
 * to cover initdb on a busy machine, and stops it when the run ends.
 */
import { afterAll, beforeAll } from "bun:test";
import { startTestServerDatabase, stopTestServer } from "./db.ts";
import { generateAuditKeys, useAuditKeys } from "../../src/audit/keys.ts";

beforeAll(async () => {
  await startTestServerDatabase();
}, { timeout: 120_000 });

afterAll(async () => {
  await stopTestServer();
});

// The audit chain key and checkpoint signing key of this test run: in memory, never under ./data.
useAuditKeys(generateAuditKeys());
