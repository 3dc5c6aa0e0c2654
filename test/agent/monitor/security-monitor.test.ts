import { afterAll, expect, test } from "bun:test";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startSecurityMonitor } from "../../../agent/monitor/security-monitor.ts";
import { createControlSecurityHandler } from "../../../agent/control/remediate/index.ts";
import { signCommand } from "../../../src/ingest/frame/commands.ts";
import type { SecurityEvent } from "../../../src/ingest/frame/frame.ts";
import { makeCisRoot } from "../../support/cis-root.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test("Monitor hook: FIM status, a scan at start and on a signed request, FIM events; Control hook verifies with the installed key", async () => {
  const root = makeCisRoot("bad");
  const state = mkdtempSync(join(tmpdir(), "servermind-secmon-"));
  dirs.push(root, state);
  const key = generateKeyPairSync("ed25519");
  const events: SecurityEvent[] = [];
  const m = await startSecurityMonitor({ root, stateDir: join(state, "monitor"), agentId: 5, commandKey: key.publicKey, emit: (e) => events.push(...e), fim: { paths: [join(root, "etc")] } });
  try {
    expect(events.map((e) => e.type)).toEqual(["fim.status", "cis.scan"]);
    expect(events[0].data).toMatchObject({ maxWatches: 8192, ignore: expect.arrayContaining(["**/*.swp"]) });
    const cmd = (action: string) => signCommand({ v: 1, id: randomUUID(), agentId: 5, action, args: {}, issuedMs: Date.now(), requestedBy: "user:1 alice" }, key.privateKey);
    expect(m.handleCommand(cmd("cis.scan"))).toMatchObject({ ok: true, summary: { fail: expect.any(Number) } });
    expect(m.handleCommand(cmd("cis.remediate"))).toMatchObject({ ok: false, error: expect.stringContaining("allow-list") });
    writeFileSync(join(root, "etc/login.defs"), "PASS_MAX_DAYS 1\n");
    for (let i = 0; i < 100 && !events.some((e) => e.type === "fim.modify"); i++) await Bun.sleep(20);
    expect(events.find((e) => e.type === "fim.modify")?.path).toBe(join(root, "etc/login.defs"));
  } finally {
    await m.stop();
  }
  // Control: refuses everything without a key, verifies with it once installed
  const none = createControlSecurityHandler({ root, stateDir: join(state, "agent"), agentId: 5 });
  expect(none({})).toMatchObject({ ok: false, error: expect.stringContaining("no server command key") });
  mkdirSync(join(state, "agent/control"), { recursive: true });
  writeFileSync(join(state, "agent/control/server-command.pub"), Buffer.from(key.publicKey.export({ format: "jwk" }).x!, "base64url").toString("base64"));
  const control = createControlSecurityHandler({ root, stateDir: join(state, "agent"), agentId: 5 });
  const r = control(signCommand({ v: 1, id: randomUUID(), agentId: 5, action: "cis.remediate", args: { controls: ["smx.files.passwd"] }, issuedMs: Date.now(), requestedBy: "user:1 alice" }, key.privateKey));
  expect(r).toMatchObject({ ok: true, dryRun: true });
});
