import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { Database } from "bun:sqlite";
import { join } from "node:path";
import { CONTROLS, PLATFORMS } from "../../../../agent/monitor/cis/controls.ts";
import { scanRoot, scanEvent } from "../../../../agent/monitor/cis/scan.ts";
import { createRootFs } from "../../../../agent/monitor/cis/root-fs.ts";
import { makeCisRoot } from "../../../support/cis-root.ts";

const good = makeCisRoot("good");
const bad = makeCisRoot("bad");
afterAll(() => {
  rmSync(good, { recursive: true, force: true });
  rmSync(bad, { recursive: true, force: true });
});

const EXERCISED = [
  "smx.files.passwd", "smx.files.shadow", "smx.files.gshadow", "smx.cron.crontab", "smx.cron.d",
  "smx.ssh.root-login", "smx.ssh.max-auth-tries", "smx.ssh.x11", "smx.ssh.use-pam",
  "smx.sysctl.net.ipv4.ip_forward", "smx.sysctl.net.ipv4.conf.all.rp_filter", "smx.sysctl.net.ipv4.tcp_syncookies",
  "smx.login.pass-max-days", "smx.login.pass-min-days", "smx.login.umask", "smx.modules.cramfs", "smx.modules.udf",
  "smx.accounts.empty-passwords", "smx.accounts.uid0", "smx.accounts.core-limit", "smx.packages.no-telnetd", "smx.audit.installed",
];

describe("control catalog", () => {
  test("at least 60 controls, unique ids, every field present, all three platform families covered", () => {
    expect(CONTROLS.length).toBeGreaterThanOrEqual(60);
    expect(new Set(CONTROLS.map((c) => c.id)).size).toBe(CONTROLS.length);
    for (const c of CONTROLS) {
      expect(c.title.length).toBeGreaterThan(10);
      expect(c.rationale.length).toBeGreaterThan(20);
      expect(c.remediation.text.length).toBeGreaterThan(5);
      expect(c.rollback.text.length).toBeGreaterThan(5);
      expect(c.severity).toBeGreaterThanOrEqual(1);
      expect(c.platforms.every((p) => PLATFORMS.includes(p))).toBe(true);
    }
    for (const p of PLATFORMS) expect(CONTROLS.filter((c) => c.platforms.includes(p)).length).toBeGreaterThanOrEqual(60);
  });
});

describe("scan of prepared roots", () => {
  test("known-good root passes and known-bad root fails every exercised control", () => {
    const g = scanRoot(good, { runtime: false });
    const b = scanRoot(bad, { runtime: false });
    expect(g.platform).toBe("debian12");
    const gs = Object.fromEntries(g.results.map((r) => [r.id, r]));
    const bs = Object.fromEntries(b.results.map((r) => [r.id, r]));
    for (const id of EXERCISED) {
      expect({ id, status: gs[id].status, observed: gs[id].observed }).toEqual({ id, status: "pass", observed: gs[id].observed });
      expect({ id, status: bs[id].status, observed: bs[id].observed }).toEqual({ id, status: "fail", observed: bs[id].observed });
    }
  });

  test("sshd: Include drop-ins win over later lines, Match blocks are ignored, source line is reported", () => {
    const g = scanRoot(good, { runtime: false }).results.find((r) => r.id === "smx.ssh.x11")!;
    expect(g.source).toEqual({ file: "/etc/ssh/sshd_config.d/10-site.conf", line: 0 });
    const root = scanRoot(good, { runtime: false }).results.find((r) => r.id === "smx.ssh.root-login")!;
    expect(root.source?.file).toBe("/etc/ssh/sshd_config"); // not the Match block's "yes"
  });

  test("absolute symlinks are re-anchored at the root, never followed onto the host", () => {
    symlinkSync("/etc/hostname-does-not-exist-here", join(bad, "etc/escape"));
    const fs = createRootFs(bad);
    expect(fs.hostPath("/etc/escape")).toBe(join(bad, "etc/hostname-does-not-exist-here"));
    expect(fs.read("/etc/escape")).toBeNull();
  });

  test("scan event is ready for packSecurity", () => {
    const e = scanEvent(scanRoot(bad, { runtime: false }));
    expect(e.type).toBe("cis.scan");
    expect(e.severity).toBeGreaterThanOrEqual(9);
    expect((e.data.results as unknown[]).length).toBe(CONTROLS.length);
  });
});

describe("read-only scan of this machine", () => {
  test("every control yields a verdict, none errors except missing package databases", () => {
    const r = scanRoot("/");
    expect(r.results.length).toBe(CONTROLS.length);
    const errors = r.results.filter((x) => x.status === "error" && !x.observed.includes("package database"));
    expect(errors).toEqual([]);
    expect(r.summary.pass + r.summary.fail).toBeGreaterThan(30);
    expect(r.durationMs).toBeLessThan(3000);
  });
});

describe("RHEL 9 family root", () => {
  test("platform detection, rpmdb.sqlite package checks, RHEL-only controls", () => {
    const root = mkdtempSync(join(tmpdir(), "servermind-cis-rhel-"));
    try {
      mkdirSync(join(root, "etc"), { recursive: true });
      writeFileSync(join(root, "etc/os-release"), 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n');
      writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/bash\n");
      writeFileSync(join(root, "etc/group"), "root:x:0:\n");
      mkdirSync(join(root, "var/lib/rpm"), { recursive: true });
      const db = new Database(join(root, "var/lib/rpm/rpmdb.sqlite"), { create: true });
      db.exec("create table Name (key text, hnum integer, idx integer)");
      db.exec("insert into Name values ('audit', 1, 0), ('telnet-server', 2, 0), ('bash', 3, 0)");
      db.close();
      const r = scanRoot(root, { runtime: false });
      expect(r.platform).toBe("rhel9");
      const st = Object.fromEntries(r.results.map((x) => [x.id, x]));
      expect(st["smx.audit.installed"].status).toBe("pass");
      expect(st["smx.packages.no-telnetd"]).toMatchObject({ status: "fail", observed: "installed: telnet-server" });
      expect(st["smx.packages.no-xinetd"].status).toBe("pass");
      expect(st["smx.files.grub-cfg"].status).toBe("notapplicable"); // Debian path, not for RHEL
      expect(st["smx.files.grub2-cfg"].observed).toContain("/boot/grub2/grub.cfg");
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
