/**
 * The service-operation rules and parsers on their own: unit-name validation (no option or
 * shell injection), which operations are dangerous, the systemd output parsers, Control's
 * verification of signed service commands, and the answer on a host without systemd.
 */
import { expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { createControlHandler } from "../../../agent/control/process.ts";
import { createServiceHandler, detectServiceManager, initName } from "../../../agent/control/services/index.ts";
import { parseJournal, parseListUnitsJson, parseListUnitsPlain, parseShow } from "../../../agent/control/services/systemd.ts";
import { isCriticalUnit, isDangerousOp, normalizeUnit } from "../../../src/ingest/frame/service-commands.ts";
import { needsConfirmation } from "../../../src/operations/services.ts";
import { signCommand, type Command } from "../../../src/ingest/frame/commands.ts";

test("unit names: canonical forms accepted, anything that could be an option or shell refused", () => {
  expect(normalizeUnit("nginx")).toBe("nginx.service");
  expect(normalizeUnit("nginx.service")).toBe("nginx.service");
  expect(normalizeUnit("getty@tty1.service")).toBe("getty@tty1.service");
  expect(normalizeUnit("dev-vda.device")).toBe("dev-vda.device");
  expect(normalizeUnit("systemd-tmpfiles-clean.timer")).toBe("systemd-tmpfiles-clean.timer");
  expect(normalizeUnit("a:b_c.d")).toBe("a:b_c.d.service");
  expect(normalizeUnit("systemd-fsck@dev-disk-by\\x2duuid-1234.service")).toBe("systemd-fsck@dev-disk-by\\x2duuid-1234.service");
  for (const bad of ["-H", "--root=/", "-", "", " ", "a b", "a;b", "a|b", "$(id)", "`id`", "a/b", "../x", ".service", "x-.service", "a\nb", "ü.service", "a\\b.service", "a\\x2.service", "a\\X2D.service", "x".repeat(201), null, 7, ["nginx"]]) {
    expect({ bad, got: normalizeUnit(bad) }).toEqual({ bad, got: null });
  }
});

test("dangerous: stop/disable of ssh or the agent on one host, and anything on more than one host", () => {
  for (const u of ["ssh.service", "sshd.service", "sshd@1-2.service", "ssh.socket", "servermind-agent.service", "servermind-agent-control.service"]) expect(isCriticalUnit(u)).toBe(true);
  for (const u of ["nginx.service", "sshguard.service", "ssh.timer", "openssh-helper.service"]) expect(isCriticalUnit(u)).toBe(false);
  expect(isDangerousOp("sshd.service", "stop")).toBe(true);
  expect(isDangerousOp("sshd.service", "disable")).toBe(true);
  expect(isDangerousOp("sshd.service", "restart")).toBe(false);
  expect(isDangerousOp("servermind-agent.service", "stop")).toBe(true);
  expect(isDangerousOp("nginx.service", "stop")).toBe(false);
  expect(needsConfirmation("nginx.service", "start", 1)).toBe(false);
  expect(needsConfirmation("nginx.service", "start", 2)).toBe(true);
  expect(needsConfirmation("ssh.service", "stop", 1)).toBe(true);
});

test("parsers: list-units JSON and plain text, show, journal JSON (string and byte-array messages)", () => {
  const json = `[{"unit":"a.service","load":"loaded","active":"active","sub":"running","description":"A"},{"unit":"b.socket","load":"loaded","active":"inactive","sub":"dead","description":"B thing"},{"nounit":1}]`;
  expect(parseListUnitsJson(json)).toEqual([
    { unit: "a.service", load: "loaded", active: "active", sub: "running", description: "A" },
    { unit: "b.socket", load: "loaded", active: "inactive", sub: "dead", description: "B thing" },
  ]);
  expect(() => parseListUnitsJson(`{"unit":"x"}`)).toThrow(/JSON list/);
  expect(parseListUnitsPlain("a.service loaded active running A\n● b.socket  loaded inactive dead  B thing\n\n")).toEqual(parseListUnitsJson(json));
  expect(parseShow("Id=a.service\nDescription=x=y\nMainPID=0\n")).toEqual({ Id: "a.service", Description: "x=y", MainPID: "0" });
  const bytes = [...Buffer.from("bad \u00ff utf8? no: plain")];
  const lines = parseJournal([
    JSON.stringify({ __REALTIME_TIMESTAMP: "1700000000123456", PRIORITY: "3", MESSAGE: "failed to bind" }),
    "not json",
    JSON.stringify({ __REALTIME_TIMESTAMP: "1700000001000000", MESSAGE: bytes }),
  ].join("\n"));
  expect(lines).toEqual([
    { ts: 1700000000123, priority: 3, message: "failed to bind" },
    { ts: 1700000001000, priority: null, message: Buffer.from(bytes).toString("utf8") },
  ]);
});

test("without systemd the answer names the init system, for every action", async () => {
  const init = initName();
  expect(init).toBe(readFileSync("/proc/1/comm", "utf8").trim());
  const none = detectServiceManager({ SERVERMIND_AGENT_SERVICE_MANAGER: "none" });
  expect(none).toEqual({ manager: null, init });
  const handle = createServiceHandler(() => none);
  for (const action of ["service.list", "service.status", "service.action"]) {
    expect(await handle(action, { unit: "nginx", op: "start" })).toEqual({ ok: false, manager: null, init, error: `no supported service manager on this host (init is ${init})` });
  }
});

test("Control runs a service command only when signed, fresh, for this agent and not replayed", async () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const now = 1_800_000_000_000;
  const calls: Array<[string, Record<string, unknown>]> = [];
  const handler = createControlHandler({
    key: publicKey, agentId: 5, now: () => now,
    services: async (action, args) => (calls.push([action, args]), { ok: true, ran: action }),
  });
  const cmd = (action: string, args: Record<string, unknown>, over: Partial<Command> = {}) => ({
    t: "command",
    command: signCommand({ v: 1, id: `c-${Math.random().toString(36).slice(2)}`, agentId: 5, action, args, issuedMs: now, requestedBy: "user:1 a", ...over }, privateKey),
  });
  const ok = cmd("service.action", { unit: "nginx.service", op: "restart" });
  expect((await handler(ok)).result).toEqual({ ok: true, ran: "service.action" });
  expect(((await handler(ok)).result as any).error).toMatch(/already used/);
  expect(((await handler(cmd("service.list", {}, { agentId: 6 }))).result as any).error).toMatch(/agent 6/);
  expect(((await handler(cmd("service.list", {}, { issuedMs: now - 600_000 }))).result as any).error).toMatch(/five minutes/);
  const forged = cmd("service.list", {});
  (forged.command as any).args = { unit: "sshd" };
  expect(((await handler(forged)).result as any).error).toMatch(/signature/);
  expect(calls).toEqual([["service.action", { unit: "nginx.service", op: "restart" }]]);
  // other actions still go to the ping/remediation checker
  expect((await handler(cmd("ping", {}))).result).toEqual({ ok: true, result: "pong" });
  expect(((await handler(cmd("service.shell", {}))).result as any).error).toMatch(/allow-list/);
  // a service command's output goes out as progress chunks before the result
  const chunks: unknown[] = [];
  const talker = createControlHandler({
    key: publicKey, agentId: 5, now: () => now,
    services: async (_a, _args, out) => {
      out.line("systemctl", "first line\nsecond line");
      await Bun.sleep(300);
      out.line("state", "x.service: active (running)");
      return { ok: true };
    },
  });
  const r = await talker(cmd("service.action", { unit: "x.service", op: "start" }), (p) => chunks.push(p.chunk));
  expect(r.result).toEqual({ ok: true });
  expect(chunks).toEqual([
    { seq: 0, lines: [expect.objectContaining({ src: "systemctl", text: "first line" }), expect.objectContaining({ src: "systemctl", text: "second line" })] },
    { seq: 1, lines: [expect.objectContaining({ src: "state", text: "x.service: active (running)" })] },
  ]);
  // without an installed key nothing runs
  const keyless = createControlHandler({ key: undefined, agentId: 5, services: async () => ({ ok: true }) });
  expect(((await keyless(cmd("service.list", {}))).result as any).error).toMatch(/no server command key/);
});
