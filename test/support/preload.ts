/** Loaded once before the test run (bunfig.toml). Stops the shared embedded PostgreSQL at the end. */
import { afterAll } from "bun:test";
import { stopTestServer } from "./db.ts";

afterAll(async () => {
  await stopTestServer();
});
