import { afterAll, expect, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_WATCH_FILES as WATCHED_FILES } from "../../../agent/config.ts";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { checkFiles, createMonitorCommandHandler, type FileFacts } from "../../../agent/monitor/process.ts";
import { startSecurityMonitor } from "../../../agent/monitor/security-monitor.ts";
import { connectIpc, listenIpc } from "../../../agent/ipc/socket.ts";
import { signCommand } from "../../../src/ingest/frame/commands.ts";
import type { SecurityEvent } from "../../../src/ingest/frame/frame.ts";
import { makeCisRoot } from "../../support/cis-root.ts";
import { tempDirs } from "../../support/temp.ts";

const dirs = tempDirs("sm-monitor-");
afterAll(() => dirs.removeAll());

test("file integrity: the first pass is the baseline; change, mode, removal and creation are events", () => {
  const root = dirs.make();
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\n");
  const baseline: Record<string, FileFacts> = {};
  expect(checkFiles(root, WATCHED_FILES, baseline, 1)).toEqual([]);
  expect(checkFiles(root, WATCHED_FILES, baseline, 2)).toEqual([]);
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n");
  chmodSync(join(root, "etc/group"), 0o666);
  rmSync(join(root, "etc/passwd"));
  writeFileSync(join(root, "etc/sudoers"), "evil ALL=(ALL) NOPASSWD: ALL\n");
  const ev = checkFiles(root, WATCHED_FILES, baseline, 3);
  expect(ev.map((e) => [e.type, e.path])).toEqual([
    ["file.removed", "/etc/passwd"],
    ["file.changed", "/etc/group"],
    ["file.created", "/etc/sudoers"],
  ]);
  expect(ev[2]!.severity).toBe(7);
  expect(checkFiles(root, WATCHED_FILES, baseline, 4)).toEqual([]);
});

test("Monitor's command socket: a signed cis.scan runs a scan (event + summary); a bad signature, another action or no security monitor is refused", async () => {
  const root = makeCisRoot("bad");
  const state = mkdtempSync(join(tmpdir(), "sm-monitor-cmd-"));
  const server = generateKeyPairSync("ed25519");
  const events: SecurityEvent[] = [];
  const m = await startSecurityMonitor({ root, stateDir: join(state, "security"), agentId: 9, commandKey: server.publicKey, emit: (e) => events.push(...e), fim: { paths: [join(root, "etc")] } });
  const path = join(state, "monitor.sock");
  const ipc = listenIpc(path, createMonitorCommandHandler(m));
  const client = await connectIpc(path);
  const cmd = (action: string, key = server.privateKey) => ({ t: "command", command: signCommand({ v: 1, id: randomUUID(), agentId: 9, action, args: {}, issuedMs: Date.now(), requestedBy: "user:1 alice" }, key) });
  try {
    events.length = 0;
    const ok = (await client.request(cmd("cis.scan"))).result as { ok: boolean; summary: { fail: number }; startedMs: number };
    expect(ok.summary.fail).toBeGreaterThan(0); // (before toMatchObject, which leaves its matchers in the object)
    expect(ok).toMatchObject({ ok: true, action: "cis.scan", summary: { fail: expect.any(Number) } });
    const scans = events.filter((e) => e.type === "cis.scan");
    expect(scans.length).toBe(1);
    expect(scans[0]!.ts).toBe(ok.startedMs);
    expect(((await client.request(cmd("cis.scan", generateKeyPairSync("ed25519").privateKey))).result as { error: string }).error).toMatch(/signature does not verify/);
    expect(((await client.request(cmd("cis.remediate"))).result as { error: string }).error).toMatch(/allow-list/);
    expect((await client.request({ t: "batch" })).t).toBe("error");
    expect(events.filter((e) => e.type === "cis.scan").length).toBe(1); // refused commands scan nothing
    expect(createMonitorCommandHandler(undefined)(cmd("cis.scan")).result).toMatchObject({ ok: false, error: expect.stringContaining("not running") });
  } finally {
    client.close();
    ipc.stop();
    await m.stop();
    rmSync(root, { recursive: true, force: true });
    rmSync(state, { recursive: true, force: true });
  }
});
