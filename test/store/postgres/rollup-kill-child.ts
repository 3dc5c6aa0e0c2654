/**
 * Child process of rollups.test.ts: runs one rollup step against the database at argv[2] and,
 * once the rollup rows are rewritten but not committed, says so and waits to be killed.
 */
import { createPgClient } from "../../../src/store/postgres/client.ts";
import { rollupStep } from "../../../src/store/postgres/rollups.ts";

const sql = createPgClient(process.argv[2]!, 1);
const timer = setTimeout(() => process.exit(3), 30_000); // never outlive the test
await rollupStep({
  sql,
  rawDays: 30,
  beforeCommit: async () => {
    process.stdout.write("rewritten\n");
    await new Promise(() => {});
  },
});
clearTimeout(timer);
process.exit(2); // not reached: the test kills this process first
