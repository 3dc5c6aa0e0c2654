/**
 * Who can reach what, as the file system decides it. Runs as root (CI does): connects to the
 * Monitor command socket as Platform's uid and as a stranger, and reads the command key as
 * Monitor's uid, through setpriv + /usr/bin/python3 so the kernel does the permission checks.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { agentPaths } from "../../../agent/config.ts";
import { commandKeyPaths } from "../../../agent/identity/command-key.ts";
import { listenIpc } from "../../../agent/ipc/socket.ts";
import { prepareLayout } from "../../../agent/supervisor/layout.ts";
import { requireComponent } from "../../support/ci.ts";

const PLATFORM = { uid: 41001, gid: 41001 };
const COLLECTOR = { uid: 41002, gid: 41002 };
const MONITOR = { uid: 41003, gid: 41003 };

/** Runs python as uid:gid with no supplementary groups; returns its exit code and output. */
function as(id: { uid: number; gid: number }, code: string) {
  const p = Bun.spawnSync(["setpriv", `--reuid=${id.uid}`, `--regid=${id.gid}`, "--clear-groups", "/usr/bin/python3", "-c", code], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: p.stdout.toString() + p.stderr.toString() };
}

test("only Platform's uid may connect to Monitor's command socket; Monitor may read the command key but not the snapshots", () => {
  const root = process.getuid?.() === 0;
  const tools = Bun.spawnSync(["sh", "-c", "command -v setpriv && test -x /usr/bin/python3"]).exitCode === 0;
  if (!requireComponent(root && tools, "root with setpriv and /usr/bin/python3")) return;
  const base = mkdtempSync(join(tmpdir(), "sm-layout-"));
  Bun.spawnSync(["chmod", "755", base]);
  const c = { stateDir: join(base, "state"), runDir: join(base, "run") };
  prepareLayout(c as never, { platform: PLATFORM, collector: COLLECTOR, monitor: MONITOR });
  const p = agentPaths(c);
  const k = commandKeyPaths(c.stateDir);
  const dir = statSync(dirname(p.monitorCommandSocket));
  expect({ mode: dir.mode & 0o7777, uid: dir.uid, gid: dir.gid }).toEqual({ mode: 0o750, uid: MONITOR.uid, gid: PLATFORM.gid });
  expect(statSync(k.dir).mode & 0o7777).toBe(0o755);
  expect(statSync(k.snapshots).mode & 0o7777).toBe(0o700);
  writeFileSync(k.publicKey, "key\n", { mode: 0o644 });
  writeFileSync(join(k.snapshots, "snap-x.json"), "{}", { mode: 0o600 });
  const server = listenIpc(p.monitorCommandSocket, () => ({ t: "result" }));
  try {
    const connect = `import socket; s = socket.socket(socket.AF_UNIX); s.connect(${JSON.stringify(p.monitorCommandSocket)}); print("connected")`;
    expect(as(PLATFORM, connect)).toMatchObject({ code: 0, out: expect.stringContaining("connected") });
    for (const stranger of [COLLECTOR, { uid: 65534, gid: 65534 }]) expect(as(stranger, connect)).toMatchObject({ code: 1, out: expect.stringContaining("Permission denied") });
    expect(as(MONITOR, `print(open(${JSON.stringify(k.publicKey)}).read())`)).toMatchObject({ code: 0, out: "key\n\n" });
    expect(as(MONITOR, `import os; os.listdir(${JSON.stringify(k.snapshots)})`)).toMatchObject({ code: 1, out: expect.stringContaining("Permission denied") });
  } finally {
    server.stop();
    rmSync(base, { recursive: true, force: true });
  }
});
