import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { tempDirs } from "../../support/temp.ts";
import { createOutbox } from "../../../agent/collect/outbox.ts";
import { listenIpc } from "../../../agent/ipc/socket.ts";

const dirs = tempDirs("sm-outbox-");
afterAll(() => dirs.removeAll());

/** A socket path in a fresh temp dir, removed after the file's tests. */
const newSocketPath = () => join(dirs.make(), "platform.sock");

const entry = (n: number, commits: number[]) => ({ kind: 1, items: 1, createdMs: n, body: Uint8Array.of(n), commit: () => commits.push(n) });

test("while Platform is down entries wait, bounded, dropping the oldest (not the head) and counting; then all go in order", async () => {
  const socketPath = newSocketPath();
  const commits: number[] = [];
  const ob = createOutbox({ socketPath, maxEntries: 5, retryMs: 20, log: () => {} });
  for (let i = 1; i <= 8; i++) ob.push(entry(i, commits));
  expect(ob.stats()).toMatchObject({ queued: 5, dropped: 3, droppedItems: 3 });
  await Bun.sleep(60);
  expect(commits).toEqual([]); // nothing committed while nobody took it
  const received: number[] = [];
  const server = listenIpc(socketPath, (m) => {
    received.push(Number(m.createdMs));
    return { t: "spooled", spoolId: received.length };
  });
  expect(await ob.flush(5000)).toBe(true);
  // 1 was the head (possibly in flight) and is kept; 2, 3, 4 were dropped
  expect(received).toEqual([1, 5, 6, 7, 8]);
  expect(commits).toEqual([1, 5, 6, 7, 8]);
  ob.push(entry(9, commits));
  expect(await ob.flush(5000)).toBe(true);
  expect(commits.at(-1)).toBe(9);
  ob.close();
  server.stop();
});

test("an entry Platform refuses is not committed and does not block the queue", async () => {
  const socketPath = newSocketPath();
  const server = listenIpc(socketPath, (m) => (m.createdMs === 2 ? { t: "error", message: "no" } : { t: "spooled", spoolId: 1 }));
  const commits: number[] = [];
  const logs: string[] = [];
  const ob = createOutbox({ socketPath, log: (m) => logs.push(m) });
  for (const n of [1, 2, 3]) ob.push(entry(n, commits));
  expect(await ob.flush(5000)).toBe(true);
  expect(commits).toEqual([1, 3]);
  expect(logs.join()).toContain("refused");
  ob.close();
  server.stop();
});
