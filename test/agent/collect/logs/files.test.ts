import { afterAll, expect, test } from "bun:test";
import { appendFileSync, renameSync, writeFileSync, mkdirSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { createFileTail } from "../../../../agent/collect/logs/files.ts";
import { tempDirs } from "../../../support/temp.ts";

const dirs = tempDirs("sm-logs-");
afterAll(() => dirs.removeAll());

function setup() {
  const dir = dirs.make();
  const logDir = join(dir, "log");
  mkdirSync(join(logDir, "nginx"), { recursive: true });
  return { logDir, statePath: join(dir, "offsets.json") };
}

test("follows a file across rename rotation without losing the old file's tail", () => {
  const p = setup();
  const f = join(p.logDir, "syslog");
  writeFileSync(f, "old line before start\n");
  const t = createFileTail({ paths: [p.logDir], statePath: p.statePath });
  expect(t.poll()).toEqual([]); // first run starts at the end
  appendFileSync(f, "one\ntwo error here\n");
  appendFileSync(join(p.logDir, "nginx", "access.log"), "GET /\n");
  const a = t.poll();
  expect(a.map((l) => l.message)).toEqual(["GET /", "one", "two error here"]);
  expect(a[2]!.severity).toBe(3);
  appendFileSync(f, "three, written just before rotation\n");
  renameSync(f, f + ".1");
  writeFileSync(f, "four, in the new file\n");
  expect(t.poll().map((l) => l.message)).toEqual(["three, written just before rotation", "four, in the new file"]);
  // rotated copies are not followed as files of their own
  appendFileSync(f + ".1", "late write to old\n");
  expect(t.poll()).toEqual([]);
  t.close();
});

test("copytruncate is noticed and the file is read again from its start", () => {
  const p = setup();
  const f = join(p.logDir, "app.log");
  writeFileSync(f, "");
  const t = createFileTail({ paths: [p.logDir], statePath: p.statePath, startAtEnd: false });
  appendFileSync(f, "a much longer first line that will be truncated away\n");
  expect(t.poll().length).toBe(1);
  truncateSync(f, 0);
  appendFileSync(f, "x\n");
  expect(t.poll().map((l) => l.message)).toEqual(["x"]);
  t.close();
});

test("offsets persist only on commit: uncommitted lines are read again after a restart", () => {
  const p = setup();
  const f = join(p.logDir, "app.log");
  writeFileSync(f, "");
  const t1 = createFileTail({ paths: [p.logDir], statePath: p.statePath, startAtEnd: false });
  appendFileSync(f, "committed\n");
  expect(t1.poll().length).toBe(1);
  t1.commit();
  appendFileSync(f, "not committed\npartial without newline");
  expect(t1.poll().map((l) => l.message)).toEqual(["not committed"]);
  t1.close(); // crash before the Collector got its spool ack: no commit
  const t2 = createFileTail({ paths: [p.logDir], statePath: p.statePath });
  expect(t2.poll().map((l) => l.message)).toEqual(["not committed"]);
  t2.commit();
  appendFileSync(f, " now finished\n");
  expect(t2.poll().map((l) => l.message)).toEqual(["partial without newline now finished"]);
  t2.close();
});
