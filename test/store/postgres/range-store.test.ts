/** PostgreSQL's console reads (src/store/postgres/queries.ts) through the RangeStore contract suite shared with ClickHouse. */
import { afterAll, beforeAll } from "bun:test";
import { postgresRangeStore } from "../../../src/store/range.ts";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { enroll } from "../../support/sim-agent.ts";
import { buildDataSet, ingestDataSet, rangeStoreCases, type DataSet } from "../../contract/range-store.case.ts";

let server: TestServer;
let data: DataSet;
let agentId: number;

beforeAll(async () => {
  server = await startTestServer();
  const a = await enroll(server.url, await server.token(), "range-pg");
  agentId = a.id;
  data = buildDataSet(a);
  await ingestDataSet(server.url, data);
}, 60_000);

afterAll(async () => {
  await server?.close();
}, 30_000);

rangeStoreCases("postgres", () => ({ store: postgresRangeStore(server.db.sql), data, agentId }));
