/**
 * Service operations in a real browser (Debian's chromium via playwright-core) against the real
 * server: a user opens a host's Services page from the host page, starts a unit with the htmx
 * form, and stopping "sshd" first asks for the typed phrase and the password, then runs; a slow
 * start shows its output (the unit's state changes) in the live fragment while it runs. The
 * commands are signed by the server and verified and run by Control's real handler in this
 * process, against a real systemd (a `systemd --user` instance); the network leg to a compiled
 * agent is covered by test/e2e/service-ops.test.ts.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { type Browser } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { haveChromium, launchChromium, signIn, watchedPage } from "../support/browser.ts";
import { startConsoleServer, type ConsoleServer } from "../support/console-server.ts";
import { startSystemdUser, systemdUserUnavailable, type SystemdUser } from "../support/systemd-user.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { createControlHandler } from "../../agent/control/process.ts";
import { createServiceHandler } from "../../agent/control/services/index.ts";
import { createSystemd } from "../../agent/control/services/systemd.ts";
import { storeCommandOutput } from "../../src/cluster/command-output.ts";

const PASSWORD = "Amber-Lantern-Quartz-4";
const unavailable = systemdUserUnavailable();
const ready = haveChromium() &&
  requireComponent(unavailable === null, `a systemd user instance (${unavailable})`);

let srv: ConsoleServer;
let browser: Browser;
let sd: SystemdUser;
let agentId = 0;
const APP = "sm-browser-app.service";
/** Takes about 2.5 s to start (a oneshot): its state changes show while it runs. */
const SLOW = "sm-browser-slow.service";

beforeAll(async () => {
  if (!ready) return;
  sd = await startSystemdUser();
  const unit = (d: string) => `[Unit]\nDescription=${d}\n[Service]\nExecStart=/bin/sleep 600\n`;
  await sd.addUnit(APP, unit("ServerMind browser app"));
  await sd.addUnit("sshd.service", unit("stand-in for the SSH daemon"));
  await sd.addUnit(SLOW, "[Unit]\nDescription=ServerMind slow oneshot\n[Service]\nType=oneshot\nExecStart=/bin/sleep 2.5\n");
  expect((await sd.ctl("start", "--", "sshd.service")).code).toBe(0);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const control = createControlHandler({
    key: publicKey, get agentId() { return agentId; },
    services: createServiceHandler(() => ({ manager: createSystemd({ user: true, env: sd.env }) })),
  });
  // Control's output chunks go where the server puts an agent's command-output messages
  srv = await startConsoleServer({
    security: {
      commandKey: privateKey,
      dispatch: async (id, command) => (await control({ t: "command", command }, (p) => {
        const c = p.chunk as { seq: number; lines: unknown[] };
        void storeCommandOutput(srv.db.sql, id, (command as { id: string }).id, c.seq, c.lines);
      })).result,
    },
  });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.close();
  await sd?.stop();
});

const active = async (unit: string) => (await sd.ctl("show", "--property=ActiveState", "--", unit)).out.trim();

test.skipIf(!ready)("open Services from the host page, start a unit, stop sshd only after the typed phrase and the password", async () => {
  const { sql } = srv.db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-7', ${Buffer.alloc(32, 7)}, ${["group:web"]}, now()) returning id`;
  agentId = Number(a!.id);
  const role = await createRole(sql, "service-operator", "", ["hosts.view", "services.view", "services.start", "services.stop"], []);
  await createUser(sql, { username: "otto", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);

  const { ctx, page, problems } = await watchedPage(browser);

  await signIn(page, srv.url, "otto", PASSWORD);
  await page.goto(`${srv.url}/hosts/${agentId}`);
  await page.click("#host-services-link");
  await page.waitForURL(new RegExp(`/hosts/${agentId}/services$`));
  expect(await page.locator("h1").innerText()).toContain("Services on web-7");
  expect(await page.locator('#service-units tr[data-unit="sshd.service"]').innerText()).toContain("active");
  // only the ops the role allows are offered
  expect(await page.locator("#service-action-form button[data-op]").evaluateAll((b) => b.map((x) => x.getAttribute("data-op")))).toEqual(["start", "stop"]);

  // a unit from the list opens its status (htmx into the Status card)
  await page.click('#service-units tr[data-unit="sshd.service"] a');
  await page.locator('#service-status .service-status[data-unit="sshd.service"]').waitFor({ timeout: 15_000 });
  const status = await page.locator("#service-status").innerText();
  expect(status).toContain("stand-in for the SSH daemon");
  const pid = (await sd.ctl("show", "--property=MainPID", "--value", "--", "sshd.service")).out.trim();
  expect(status).toMatch(new RegExp(`main pid\\s+${pid}\\b`, "i"));

  await page.fill("#service-action-form input[name=unit]", APP);
  await page.click("#service-action-form button[data-op=start]");
  await page.locator("#service-action-result .service-result.ok").waitFor({ timeout: 15_000 });
  expect(await page.locator("#service-action-result").innerText()).toContain(`start ${APP} on web-7: done`);
  expect(await active(APP)).toBe("ActiveState=active");

  await page.fill("#service-action-form input[name=unit]", "sshd");
  await page.click("#service-action-form button[data-op=stop]");
  await page.locator("#service-action-result .alert.error").waitFor({ timeout: 15_000 });
  expect(await page.locator("#service-action-result").innerText()).toContain("Type stop sshd.service on web-7 exactly");
  expect(await active("sshd.service")).toBe("ActiveState=active");
  await page.click("#service-action-form details.confirm-fields summary");
  await page.fill("#service-action-form input[name=confirm]", "stop sshd.service on web-7");
  await page.fill("#service-action-form input[name=reauth]", PASSWORD);
  await page.click("#service-action-form button[data-op=stop]");
  await page.locator("#service-action-result .service-result.ok").waitFor({ timeout: 15_000 });
  expect(await page.locator("#service-action-result").innerText()).toContain("stop sshd.service on web-7: done");
  expect(await active("sshd.service")).toBe("ActiveState=inactive");
  // a slow operation: the live fragment shows its output while it runs, then its result
  await page.fill("#service-action-form input[name=unit]", SLOW);
  await page.click("#service-action-form button[data-op=start]");
  const t0 = performance.now();
  await page.locator('#service-action-result .service-live[data-status="sent"] .live-output', { hasText: `${SLOW}: activating (start)` }).waitFor({ timeout: 15_000 });
  const liveMs = performance.now() - t0;
  await page.locator('#service-action-result .service-live[data-status="ok"]').waitFor({ timeout: 15_000 });
  const doneMs = performance.now() - t0;
  expect(await page.locator("#service-action-result").innerText()).toContain(`start ${SLOW} on web-7: done`);
  expect(doneMs - liveMs).toBeGreaterThan(1000);
  console.log(`browser: live state line shown after ${liveMs.toFixed(0)} ms, result after ${doneMs.toFixed(0)} ms`);
  await page.screenshot({ path: "test-artifacts/services-host.png", fullPage: true });

  const audited = await sql`select action, details from audit_log where category = 'service_operation' and success order by id`;
  expect(audited.map((r) => `${r.action} ${r.details.unit}`)).toEqual(["service.list *", "service.status sshd.service", `service.start ${APP}`, "service.stop sshd.service", `service.start ${SLOW}`]);
  expect(audited.at(-2)!.details).toMatchObject({ host: "web-7", dangerous: true, reauth: "password" });
  expect(problems).toEqual([]);
  await ctx.close();
}, 90_000);
