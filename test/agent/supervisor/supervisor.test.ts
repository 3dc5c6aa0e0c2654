import { afterAll, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createSupervisor } from "../../../agent/supervisor/supervisor.ts";
import { tempDirs } from "../../support/temp.ts";

const dirs = tempDirs("sm-sup-");
afterAll(() => dirs.removeAll());

async function until(cond: () => boolean, ms = 10_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not reached in time");
    await Bun.sleep(20);
  }
}

test("a killed process is restarted, the others keep their pid; stop ends all of them", async () => {
  const sup = createSupervisor({
    specs: ["a", "b", "c"].map((name) => ({ name, argv: ["sleep", "30"] })),
    baseMs: 50, log: () => {},
  });
  sup.start();
  await until(() => sup.states().every((s) => s.state === "running"));
  const before = sup.states();
  process.kill(before[1]!.pid!, "SIGKILL");
  await until(() => sup.states()[1]!.restarts === 1 && sup.states()[1]!.state === "running");
  const after = sup.states();
  expect(after[1]!.pid).not.toBe(before[1]!.pid);
  expect(after[1]!.lastExit).toBe("signal SIGKILL");
  expect(after[0]!.pid).toBe(before[0]!.pid);
  expect(after[2]!.pid).toBe(before[2]!.pid);
  await sup.stop();
  expect(sup.states().every((s) => s.state === "stopped")).toBe(true);
  for (const s of after) expect(() => process.kill(s.pid!, 0)).toThrow();
});

test("a process that keeps crashing is restarted with growing delays", async () => {
  const dir = dirs.make();
  const log = join(dir, "starts");
  writeFileSync(log, "");
  const sup = createSupervisor({
    specs: [{ name: "crasher", argv: ["sh", "-c", `date +%s%N >> ${log}; exit 3`] }],
    baseMs: 40, maxMs: 1000, log: () => {},
  });
  sup.start();
  // the fifth start has logged and exited on its own (stopping a run still in progress would end it by SIGTERM)
  await until(() => readFileSync(log, "utf8").trim().split("\n").length >= 5 && sup.states()[0]!.state === "restarting");
  await sup.stop();
  const t = readFileSync(log, "utf8").trim().split("\n").map((l) => Number(l) / 1e6);
  const gaps = t.slice(1).map((x, i) => x - t[i]!);
  // 40, 80, 160, 320 ms of backoff (plus start-up time)
  expect(gaps[3]!).toBeGreaterThan(gaps[0]! + 150);
  expect(sup.states()[0]!.lastExit).toBe("exit 3");
});
