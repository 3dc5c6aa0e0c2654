/**
 * Remediation must take effect on the running system: sshd validated then reloaded, sysctl values
 * set live, all planned (visible in the dry run) and undone on rollback. Every test runs on a
 * prepared root with injected services that record calls: nothing here reaches the host.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRemediator, type RemediationResult } from "../../../../agent/control/remediate/executor.ts";
import { createDetachedServices, createHostServices, type EffectOutcome, type HostServices, type Outcome } from "../../../../agent/control/remediate/effects.ts";
import { signCommand } from "../../../../src/ingest/frame/commands.ts";
import { makeCisRoot } from "../../../support/cis-root.ts";

const server = generateKeyPairSync("ed25519");
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const CONTROLS = ["smx.ssh.root-login", "smx.sysctl.net.ipv4.ip_forward", "smx.files.passwd", "smx.login.pass-max-days"];
const cmd = (action: string, args: Record<string, unknown>) => signCommand({ v: 1, id: randomUUID(), agentId: 7, action, args, issuedMs: Date.now(), requestedBy: "user:1 alice" }, server.privateKey);

/** Services that record every call; `fail` makes one operation fail. */
function fakeServices(fail?: "validate" | "reload" | "sysctl") {
  const calls: string[] = [];
  const out = (op: string, bad: boolean): Outcome => (calls.push(op), bad ? { status: "failed", output: `${op} failed: line 3: Bad configuration option` } : { status: "done", output: `${op} ok` });
  const services: HostServices = {
    live: true,
    validateSshd: () => out("sshd -t", fail === "validate"),
    reloadSshd: () => out("reload sshd", fail === "reload"),
    setSysctl: (k, v) => out(`sysctl ${k}=${v}`, fail === "sysctl"),
  };
  return { services, calls };
}

function setup(fail?: "validate" | "reload" | "sysctl") {
  const root = makeCisRoot("bad");
  const snapshotDir = join(tmpdir(), `servermind-effects-${randomUUID()}`);
  dirs.push(root, snapshotDir);
  // the running kernel's value, as /proc/sys shows it under this root
  mkdirSync(join(root, "proc/sys/net/ipv4"), { recursive: true });
  writeFileSync(join(root, "proc/sys/net/ipv4/ip_forward"), "1\n");
  const f = fakeServices(fail);
  return { root, ...f, rem: createRemediator({ root, snapshotDir, publicKey: server.publicKey, agentId: 7, services: f.services }) };
}

function ok<T extends RemediationResult>(r: T): Extract<T, { ok: true }> {
  if (!r.ok) throw new Error(JSON.stringify(r));
  return r as Extract<T, { ok: true }>;
}

describe("remediation effects on the running system", () => {
  test("the dry run shows the sshd reload and the live sysctl change, and does nothing", () => {
    const { rem, calls } = setup();
    const dry = ok(rem.execute(cmd("cis.remediate", { controls: CONTROLS })));
    expect(dry.effects).toEqual([
      { kind: "sshd-reload", files: ["/etc/ssh/sshd_config"], what: "validate with sshd -t, then reload sshd" },
      { kind: "sysctl", key: "net.ipv4.ip_forward", value: "0", before: "1", what: "sysctl -w net.ipv4.ip_forward=0 (running value 1)" },
    ]);
    expect(calls).toEqual([]);
  });

  test("apply: write, sshd -t, reload, set the kernel value; rollback: restore, sshd -t, reload, put the old value back", () => {
    const { rem, calls, root } = setup();
    const applied = ok(rem.execute(cmd("cis.remediate", { controls: CONTROLS, dryRun: false })));
    expect(calls).toEqual(["sshd -t", "reload sshd", "sysctl net.ipv4.ip_forward=0"]);
    expect((applied.effects as EffectOutcome[]).map((e) => [e.kind, e.status])).toEqual([["sshd-reload", "done"], ["sshd-reload", "done"], ["sysctl", "done"]]);
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toContain("PermitRootLogin no\nMatch");
    calls.length = 0;
    const back = ok(rem.execute(cmd("cis.rollback", { snapshot: applied.snapshot })));
    expect(calls).toEqual(["sshd -t", "reload sshd", "sysctl net.ipv4.ip_forward=1"]);
    expect((back.effects as EffectOutcome[]).every((e) => e.status === "done")).toBe(true);
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).not.toContain("PermitRootLogin no\nMatch");
  });

  test("a configuration sshd -t rejects is rolled back at once; nothing is reloaded or set", () => {
    const { rem, calls, root } = setup("validate");
    const before = readFileSync(join(root, "etc/ssh/sshd_config"), "utf8");
    const r = rem.execute(cmd("cis.remediate", { controls: CONTROLS, dryRun: false }));
    expect((r as { error: string }).error).toContain("Bad configuration option"); // sshd's own words reach the console
    expect(r).toMatchObject({ ok: false, error: expect.stringContaining("sshd -t rejected the new configuration; the change was rolled back") });
    expect(calls).toEqual(["sshd -t"]);
    expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toBe(before);
    expect(readFileSync(join(root, "etc/passwd"), "utf8")).toContain("toor"); // every file, not only sshd's
  });

  test("a failed reload or sysctl write is reported with the snapshot that undoes the change", () => {
    for (const fail of ["reload", "sysctl"] as const) {
      const { rem, root } = setup(fail);
      const r = rem.execute(cmd("cis.remediate", { controls: CONTROLS, dryRun: false }));
      const snapshot = (r as { snapshot: string }).snapshot; // (toMatchObject leaves its matchers in the object)
      expect(r).toMatchObject({ ok: false, error: expect.stringContaining("not applied to the running system"), snapshot: expect.stringMatching(/^snap-/) });
      expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).toContain("PermitRootLogin no\nMatch");
      // the rollback restores the files even while the service keeps failing, and says so
      const back = rem.execute(cmd("cis.rollback", { snapshot }));
      expect(back).toMatchObject({ ok: false, error: expect.stringContaining("the files were restored, but not applied") });
      expect(readFileSync(join(root, "etc/ssh/sshd_config"), "utf8")).not.toContain("PermitRootLogin no\nMatch");
    }
  });

  test("only sshd content changes reload sshd: a mode fix on sshd_config does not", () => {
    const { rem } = setup();
    const dry = ok(rem.execute(cmd("cis.remediate", { controls: ["smx.files.sshd-config", "smx.login.pass-max-days"] })));
    expect(dry.effects).toEqual([]);
  });

  test("a root that is not / gets detached services by default: every effect is skipped and says why", () => {
    const root = makeCisRoot("bad");
    const snapshotDir = join(tmpdir(), `servermind-effects-${randomUUID()}`);
    dirs.push(root, snapshotDir);
    const rem = createRemediator({ root, snapshotDir, publicKey: server.publicKey, agentId: 7 });
    const applied = ok(rem.execute(cmd("cis.remediate", { controls: CONTROLS, dryRun: false })));
    expect(applied.effects.length).toBe(3);
    for (const e of applied.effects) expect(e).toMatchObject({ status: "skipped", output: `root ${root} is not the running system` });
    expect(createDetachedServices(root).live).toBe(false);
  });

  test("the host services refuse a sysctl key that is not one (no path outside /proc/sys)", () => {
    for (const key of ["../../../etc/passwd", "kernel/../../x", "a..b", ""]) expect(createHostServices().setSysctl(key, "1").status).toBe("failed");
  });
});
