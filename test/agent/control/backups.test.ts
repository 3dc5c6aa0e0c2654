/**
 * Control's backup commands without a server: only signed, fresh, unreplayed `backup.*`
 * commands for this agent reach the engine; a run against a local directory creates the
 * repository once (recovery key in that result only), reports progress as "backup" output lines,
 * applies retention; and no secret of the command comes back in an error.
 */
import { afterAll, expect, test } from "bun:test";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createControlHandler } from "../../../agent/control/process.ts";
import { createBackupHandler, redactText } from "../../../agent/control/backups/index.ts";
import { signCommand, type Command } from "../../../src/ingest/frame/commands.ts";

const work = mkdtempSync(join(tmpdir(), "sm-control-backups-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

test("backup.* commands: signed only, a run with progress and retention, a restore, secrets never in an error", async () => {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const now = Date.now();
  const handler = createControlHandler({
    key: publicKey, agentId: 9, now: () => now,
    services: async () => ({ ok: false, error: "not here" }),
    backups: createBackupHandler({ dumpDir: join(work, "dumps"), progressMs: 50 }),
  });
  const cmd = (action: string, args: Record<string, unknown>, over: Partial<Command> = {}) => ({
    t: "command",
    command: signCommand({ v: 1, id: `c-${randomBytes(6).toString("hex")}`, agentId: 9, action, args, issuedMs: now, requestedBy: "user:1 a", ...over }, privateKey),
  });
  const src = join(work, "src");
  mkdirSync(src);
  writeFileSync(join(src, "a.txt"), "alpha\n");
  const destination = { type: "local", path: join(work, "repo"), fsync: false };
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const chunks: any[] = [];
  const progress = (p: any) => chunks.push(p.chunk);

  // refused: another agent, a forged argument, an action off the allow-list
  expect(((await handler(cmd("backup.test", { destination }, { agentId: 8 }))).result as any).error).toMatch(/agent 8/);
  const forged = cmd("backup.test", { destination });
  (forged.command as any).args = { destination: { ...destination, path: "/" } };
  expect(((await handler(forged)).result as any).error).toMatch(/signature/);
  expect(((await handler(cmd("backup.shell", {}))).result as any).error).toMatch(/allow-list/);

  expect((await handler(cmd("backup.test", { destination }))).result).toMatchObject({ ok: true, repository: false });
  // without init a missing repository fails the run
  expect(((await handler(cmd("backup.run", { destination, password, paths: [src], init: false }))).result as any).error).toMatch(/no repository/);
  const first = (await handler(cmd("backup.run", { destination, password, paths: [src], init: true, keep: { last: 1 } }), progress)).result as any;
  expect(first).toMatchObject({ ok: true, files: 1, bytes: 6, newBytes: 6 });
  expect(first.recoveryKey).toMatch(/^[0-9a-f]{8}(-[0-9a-f]{8}){7}$/);
  expect(chunks.flatMap((c) => c.lines).every((l: any) => l.src === "backup")).toBe(true);
  expect(chunks.flatMap((c) => c.lines).map((l: any) => l.text).join("\n")).toMatch(/creating one[\s\S]*retention: 1 snapshots kept/);
  writeFileSync(join(src, "a.txt"), "beta\n");
  const second = (await handler(cmd("backup.run", { destination, password, paths: [src], init: true, keep: { last: 1 } }))).result as any;
  expect(second).toMatchObject({ ok: true, retention: { kept: 1, removed: 1 } });
  expect(second.recoveryKey).toBeUndefined(); // the repository existed: init does not run again
  const snaps = (await handler(cmd("backup.snapshots", { destination, password }))).result as any;
  expect(snaps.snapshots.map((s: any) => s.id)).toEqual([second.snapshot]);
  const restored = (await handler(cmd("backup.restore", { destination, password, snapshot: "latest", target: join(work, "out"), include: [] }))).result as any;
  expect(restored).toMatchObject({ ok: true, files: 1 });
  expect(readFileSync(join(work, "out", src, "a.txt"), "utf8")).toBe("beta\n");
  expect(((await handler(cmd("backup.restore", { destination, password, snapshot: "latest", target: "relative" }))).result as any).error).toMatch(/absolute/);
  expect(((await handler(cmd("backup.run", { destination, password: "wrong-password", paths: [src] }))).result as any).error).toMatch(/wrong password/);

  // an error naming a secret (here the destination path holds the password) comes back redacted
  const leaky = { type: "local", path: `/proc/nonexistent-${password}/repo`, password };
  const failed = (await handler(cmd("backup.run", { destination: leaky, password, paths: [src], init: true }))).result as any;
  expect(failed.ok).toBe(false);
  expect(failed.error).toContain("********");
  expect(failed.error).not.toContain(password);
  expect(redactText(`a ${password} b ${password}`, [password])).toBe("a ******** b ********");
}, 180_000); // each open derives the password's key with scrypt (about 1 s idle, much more under load)
