/**
 * Service operations against a real systemd: a `systemd --user` instance started for the test
 * (test/support/systemd-user.ts; systemd is not PID 1 on the CI machines), driven through
 * Control's service handler and the systemd implementation exactly as a signed command would
 * be. Every outcome is checked against the manager independently (systemctl show, the enable
 * symlink, /proc/PID).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { createServiceHandler } from "../../../agent/control/services/index.ts";
import { createSystemd, parseListUnitsPlain } from "../../../agent/control/services/systemd.ts";
import { requireComponent } from "../../support/ci.ts";
import { startSystemdUser, systemdUserUnavailable, type SystemdUser } from "../../support/systemd-user.ts";

const unavailable = systemdUserUnavailable();
const run = requireComponent(unavailable === null, `a systemd user instance (${unavailable})`);

let sd: SystemdUser;
let handle: ReturnType<typeof createServiceHandler>;

const UNIT = "sm-test-web.service";
beforeAll(async () => {
  if (!run) return;
  sd = await startSystemdUser();
  await sd.addUnit(UNIT, `[Unit]\nDescription=ServerMind test web\n[Service]\nExecStart=/bin/sleep 300\nExecReload=/bin/true\n[Install]\nWantedBy=default.target\n`);
  await sd.addUnit("sm-test-broken.service", `[Unit]\nDescription=ServerMind broken unit\n[Service]\nType=oneshot\nExecStart=/bin/false\n`);
  await sd.addUnit("sm-test-slow.service", `[Unit]\nDescription=ServerMind slow unit\n[Service]\nType=oneshot\nExecStart=/bin/sleep 20\n`);
  handle = createServiceHandler(() => ({ manager: createSystemd({ user: true, env: sd.env, timeoutMs: 10_000 }) }));
}, 30_000);
afterAll(async () => {
  await sd?.stop();
});

/** ActiveState / UnitFileState / MainPID straight from the manager. */
async function manager(unit: string) {
  const r = await sd.ctl("show", "--property=ActiveState,UnitFileState,MainPID", "--", unit);
  return Object.fromEntries(r.out.trim().split("\n").map((l) => l.split("=", 2) as [string, string]));
}

describe.if(run)("systemd (a real user instance)", () => {
  test("start, status, list, restart, reload, stop, enable, disable: each as the manager reports it", async () => {
    const started = (await handle("service.action", { unit: UNIT, op: "start" })) as any;
    expect(started).toMatchObject({ ok: true, op: "start", unit: UNIT, exitCode: 0, after: { active: "active", sub: "running" } });
    expect((await manager(UNIT)).ActiveState).toBe("active");

    const st = (await handle("service.status", { unit: "sm-test-web", lines: 5 })) as any; // bare name: .service
    expect(st.ok).toBe(true);
    expect(st.status).toMatchObject({ unit: UNIT, description: "ServerMind test web", load: "loaded", active: "active", sub: "running", enabled: "disabled" });
    const pid = Number((await manager(UNIT)).MainPID);
    expect(st.status.mainPid).toBe(pid);
    expect(existsSync(`/proc/${pid}`)).toBe(true);
    expect(Array.isArray(st.status.journal)).toBe(true);

    const list = (await handle("service.list", {})) as any;
    expect(list.ok).toBe(true);
    expect(list.manager).toBe("systemd (user instance)");
    expect(list.units.find((u: any) => u.unit === UNIT)).toEqual({ unit: UNIT, load: "loaded", active: "active", sub: "running", description: "ServerMind test web" });
    // the plain-text fallback (systemctl before v246) reads the same rows from the same manager
    const plain = parseListUnitsPlain((await sd.ctl("--plain", "--all", "--no-legend", "list-units")).out);
    expect(plain.find((u) => u.unit === UNIT)).toEqual(list.units.find((u: any) => u.unit === UNIT));
    expect(plain.length).toBe(list.units.length);

    const restarted = (await handle("service.action", { unit: UNIT, op: "restart" })) as any;
    expect(restarted.ok).toBe(true);
    const pid2 = Number((await manager(UNIT)).MainPID);
    expect(pid2).toBeGreaterThan(0);
    expect(pid2).not.toBe(pid);

    expect(((await handle("service.action", { unit: UNIT, op: "reload" })) as any).ok).toBe(true);

    const stopped = (await handle("service.action", { unit: UNIT, op: "stop" })) as any;
    expect(stopped).toMatchObject({ ok: true, after: { active: "inactive" } });
    expect((await manager(UNIT)).ActiveState).toBe("inactive");
    expect(existsSync(`/proc/${pid2}`)).toBe(false);

    const link = join(sd.env.XDG_CONFIG_HOME!, "systemd/user/default.target.wants", UNIT);
    const enabled = (await handle("service.action", { unit: UNIT, op: "enable" })) as any;
    expect(enabled).toMatchObject({ ok: true, after: { enabled: "enabled" } });
    expect(existsSync(link)).toBe(true);
    expect((await manager(UNIT)).UnitFileState).toBe("enabled");
    const disabled = (await handle("service.action", { unit: UNIT, op: "disable" })) as any;
    expect(disabled).toMatchObject({ ok: true, after: { enabled: "disabled" } });
    expect(existsSync(link)).toBe(false);
  }, 60_000);

  test("a failing unit, a missing unit and an op the unit does not support answer ok: false with the manager's words", async () => {
    const broken = (await handle("service.action", { unit: "sm-test-broken.service", op: "start" })) as any;
    expect(broken.ok).toBe(false);
    expect(broken.exitCode).not.toBe(0);
    expect(broken.output).toContain("sm-test-broken.service");
    expect((await manager("sm-test-broken.service")).ActiveState).toBe("failed");

    const missing = (await handle("service.action", { unit: "sm-test-nonexistent.service", op: "start" })) as any;
    expect(missing.ok).toBe(false);
    expect(missing.output).toMatch(/not found/i);

    const reload = (await handle("service.action", { unit: "sm-test-broken.service", op: "reload" })) as any;
    expect(reload.ok).toBe(false);
    expect(reload.output).toMatch(/reload/i);
  }, 30_000);

  test("an operation that outlasts its timeout is cut off and says so", async () => {
    const quick = createServiceHandler(() => ({ manager: createSystemd({ user: true, env: sd.env, timeoutMs: 1000 }) }));
    const t0 = performance.now();
    const r = (await quick("service.action", { unit: "sm-test-slow.service", op: "start" })) as any;
    const ms = performance.now() - t0;
    expect(r).toMatchObject({ ok: false, timedOut: true, exitCode: null });
    expect(r.error).toMatch(/did not finish in time/);
    expect(ms).toBeLessThan(5000); // one 1 s timeout for the op, one (fast) show after it
    await sd.ctl("stop", "--no-block", "--", "sm-test-slow.service");
  }, 30_000);

  test("a unit name with systemd's \\x escapes works end to end", async () => {
    const name = "sm-test-by\\x2dname.service";
    await sd.addUnit(name, `[Unit]\nDescription=escaped\n[Service]\nExecStart=/bin/sleep 300\n`);
    expect(await handle("service.action", { unit: name, op: "start" })).toMatchObject({ ok: true, unit: name, after: { active: "active" } });
    expect((await manager(name)).ActiveState).toBe("active");
    expect(await handle("service.action", { unit: name, op: "stop" })).toMatchObject({ ok: true, after: { active: "inactive" } });
  }, 30_000);

  test("names that could be options or shell never reach systemctl", async () => {
    for (const unit of ["-H evil", "--help", "a;b.service", "x y", "../etc/passwd", "", ".service", 42]) {
      const r = (await handle("service.action", { unit, op: "stop" })) as any;
      expect({ unit, ok: r.ok, error: r.error }).toEqual({ unit, ok: false, error: expect.stringMatching(/unit must be/) });
    }
    const r = (await handle("service.action", { unit: UNIT, op: "mask" })) as any;
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/op must be one of/) });
  });
});
