/**
 * Monitor's read-only start (agent/supervisor/privileges.ts), run for real: the chain of
 * unshare, the namespace step and setpriv gives the command its user, CAP_DAC_READ_SEARCH
 * alone and a view without the hidden directories; where the chain cannot start, the trial run
 * says why instead of handing the supervisor a command that would fail at every restart.
 */
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ownCapabilities, readOnlyLaunch } from "../../../agent/supervisor/privileges.ts";
import { lookupUser } from "../../../agent/supervisor/layout.ts";
import { requireComponent } from "../../support/ci.ts";

const root = process.getuid?.() === 0;
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

test.if(requireComponent(root, "root (a mount namespace and setpriv need it)"))("the chain runs the command as the user, with read access only, blind to the hidden directory", () => {
  const hidden = mkdtempSync(join(tmpdir(), "sm-hidden-"));
  dirs.push(hidden);
  writeFileSync(join(hidden, "machine.secret"), "s3cret\n", { mode: 0o600 });
  const script = `id -u; grep -E '^Cap(Eff|Bnd|Amb):' /proc/self/status; ls -A ${hidden}; head -c 5 /etc/shadow >/dev/null && echo shadow-readable; ls /dev | tr '\\n' ' '; echo; touch /etc/servermind-should-not-exist 2>/dev/null || echo write-refused`;
  const launch = readOnlyLaunch("nobody", [], [hidden], ["/bin/sh", "-c", script]);
  if (!("argv" in launch)) throw new Error(launch.error);
  const p = Bun.spawnSync(launch.argv, { stdout: "pipe", stderr: "pipe" });
  const out = p.stdout.toString();
  expect(p.exitCode).toBe(0);
  const lines = out.trim().split("\n");
  expect(Number(lines[0])).toBe(lookupUser("nobody")!.uid);
  expect(ownCapabilities(out)).toMatchObject({ effective: 4n, bounding: 4n, ambient: 4n });
  expect(out).not.toContain("machine.secret");
  expect(out).toContain("shadow-readable");
  expect(out).toContain("fd full null random stderr stdin stdout urandom zero");
  expect(out).toContain("write-refused");
});

test.if(requireComponent(root, "root (a mount namespace and setpriv need it)"))("a chain that cannot start is reported, not handed to the supervisor", () => {
  const launch = readOnlyLaunch("nobody", [], ["/nonexistent/servermind-hidden"], ["/bin/true"]);
  expect("error" in launch && launch.error).toMatch(/^a trial start failed \(.+\)$/);
});
