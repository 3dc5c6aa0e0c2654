import { afterAll, describe, expect, test } from "bun:test";
import { createHash, generateKeyPairSync, randomUUID } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { createRemediator } from "../../../../agent/control/remediate/executor.ts";
import { scanRoot } from "../../../../agent/monitor/cis/scan.ts";
import { signCommand, type Command } from "../../../../src/ingest/frame/commands.ts";
import { makeCisRoot } from "../../../support/cis-root.ts";

const server = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519");
const root = makeCisRoot("bad");
const snapshotDir = join(tmpdir(), `servermind-snap-${process.pid}-${Date.now()}`);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(snapshotDir, { recursive: true, force: true });
});

const FIXABLE = ["smx.files.passwd", "smx.files.shadow", "smx.cron.d", "smx.ssh.root-login", "smx.ssh.max-auth-tries", "smx.ssh.x11", "smx.sysctl.net.ipv4.ip_forward", "smx.sysctl.net.ipv4.conf.all.rp_filter", "smx.login.pass-max-days", "smx.login.umask", "smx.modules.cramfs", "smx.accounts.core-limit"];

const cmd = (action: string, args: Record<string, unknown>, over: Partial<Command> = {}): Command => ({ v: 1, id: randomUUID(), agentId: 7, action, args, issuedMs: Date.now(), requestedBy: "user:1 alice", ...over });

/** Every path under the root with its bytes, mode, owner and (for links) target. */
function tree(dir: string, rel = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of readdirSync(join(dir, rel)).sort()) {
    const p = join(rel, n);
    const st = lstatSync(join(dir, p));
    const attrs = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${Math.floor(st.mtimeMs)}`;
    if (st.isSymbolicLink()) out[p] = `link ${readlinkSync(join(dir, p))}`;
    else if (st.isDirectory()) Object.assign(out, { [p]: `dir ${attrs}` }, tree(dir, p));
    else out[p] = `file ${attrs} ${createHash("sha256").update(readFileSync(join(dir, p))).digest("hex")}`;
  }
  return out;
}

const status = () => Object.fromEntries(scanRoot(root, { runtime: false }).results.map((r) => [r.id, r.status]));

describe("remediation executor", () => {
  const rem = createRemediator({ root, snapshotDir, publicKey: server.publicKey, agentId: 7 });

  test("refuses unsigned, foreign-signed, wrong-agent, expired, replayed and non-allow-listed commands", () => {
    const c = cmd("cis.remediate", { controls: FIXABLE, dryRun: false });
    expect(rem.execute(c)).toMatchObject({ ok: false, error: expect.stringContaining("no signature") });
    expect(rem.execute(signCommand(c, other.privateKey))).toMatchObject({ ok: false, error: expect.stringContaining("does not verify") });
    const tampered = { ...signCommand(c, server.privateKey), args: { controls: ["smx.files.passwd"], dryRun: false } };
    expect(rem.execute(tampered)).toMatchObject({ ok: false, error: expect.stringContaining("does not verify") });
    expect(rem.execute(signCommand(cmd("cis.remediate", { controls: FIXABLE }, { agentId: 8 }), server.privateKey))).toMatchObject({ ok: false, error: expect.stringContaining("agent 8") });
    expect(rem.execute(signCommand(cmd("cis.remediate", { controls: FIXABLE }, { issuedMs: Date.now() - 10 * 60_000 }), server.privateKey))).toMatchObject({ ok: false, error: expect.stringContaining("older") });
    expect(rem.execute(signCommand(cmd("shell.exec", { cmd: "id" }), server.privateKey))).toMatchObject({ ok: false, error: expect.stringContaining("allow-list") });
    const once = signCommand(cmd("cis.remediate", { controls: ["smx.files.passwd"] }), server.privateKey);
    expect(rem.execute(once).ok).toBe(true);
    expect(rem.execute(once)).toMatchObject({ ok: false, error: expect.stringContaining("already used") });
    for (const id of FIXABLE) expect(status()[id]).toBe("fail"); // nothing changed
  });

  test("break, scan, dry run (exact diff, nothing written), remediate, verify, roll back exactly, verify again", () => {
    const pristine = tree(root);
    const dry = rem.execute(signCommand(cmd("cis.remediate", { controls: [...FIXABLE, "smx.packages.no-telnetd"] }), server.privateKey));
    if (!dry.ok || dry.action !== "cis.remediate") throw new Error(JSON.stringify(dry));
    expect(dry.dryRun).toBe(true);
    expect(tree(root)).toEqual(pristine);
    expect(dry.skipped).toEqual([{ id: "smx.packages.no-telnetd", reason: expect.stringContaining("no automatic remediation") }]);
    const byPath = Object.fromEntries(dry.changes.map((c) => [c.path, c]));
    expect(byPath["/etc/passwd"]).toMatchObject({ diff: "", before: { mode: "0666" }, after: { mode: "0644" } });
    const sshd = byPath["/etc/ssh/sshd_config"].diff;
    // set values are edited where they are defined; an unset one is added before the first Match block
    expect(sshd).toContain(" #PermitRootLogin prohibit-password\n-MaxAuthTries 6\n-X11Forwarding yes\n+MaxAuthTries 4\n+X11Forwarding no\n");
    expect(sshd).toContain("+PermitRootLogin no\n Match User backup\n   PermitRootLogin yes\n");
    expect(byPath["/etc/sysctl.d/99-sysctl.conf"].diff).toContain("-net.ipv4.ip_forward = 1\n+net.ipv4.ip_forward = 0");
    expect(byPath["/etc/sysctl.d/99-zz-servermind.conf"]).toMatchObject({ before: { exists: false }, diff: expect.stringContaining("+net.ipv4.conf.all.rp_filter = 1") });
    expect(byPath["/etc/modprobe.d/servermind-cramfs.conf"].diff).toContain("+install cramfs /bin/false");
    expect(byPath["/etc/security/limits.d"]).toMatchObject({ before: { exists: false }, after: { exists: true } });

    const applied = rem.execute(signCommand(cmd("cis.remediate", { controls: FIXABLE, dryRun: false }), server.privateKey));
    if (!applied.ok || applied.action !== "cis.remediate") throw new Error(JSON.stringify(applied));
    for (const id of FIXABLE) expect(applied.verdicts[id]).toBe("pass");
    const after = status();
    for (const id of FIXABLE) expect(after[id]).toBe("pass");
    expect(after["smx.packages.no-telnetd"]).toBe("fail");
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toContain("\nPermitRootLogin no\nMatch User backup\n  PermitRootLogin yes\n");

    // a restarted Control (fresh nonce memory) still refuses to run the same command twice
    const restarted = createRemediator({ root, snapshotDir, publicKey: server.publicKey, agentId: 7 });
    const again = restarted.execute(signCommand({ ...cmd("cis.remediate", {}), id: applied.commandId, args: { controls: FIXABLE, dryRun: false } }, server.privateKey));
    expect(again).toMatchObject({ ok: false, error: expect.stringContaining("already executed") });

    const back = rem.execute(signCommand(cmd("cis.rollback", { snapshot: applied.snapshot }), server.privateKey));
    if (!back.ok || back.action !== "cis.rollback") throw new Error(JSON.stringify(back));
    expect(tree(root)).toEqual(pristine); // bytes, modes, owners, mtimes; created files gone
    for (const id of FIXABLE) expect(back.verdicts[id]).toBe("fail");
    for (const id of FIXABLE) expect(status()[id]).toBe("fail");
  });
});
