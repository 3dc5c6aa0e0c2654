/**
 * The AI approvals page in a real browser (Debian's chromium via playwright-core) against the
 * real server with the console and /mcp mounted: an AI client (the SDK's own MCP client, over
 * the real port) asks to stop sshd and to stop the agent's own unit, both queued. A person signs
 * in, sees each request with the client's stated reason; approving needs the typed phrase and
 * the password (a wrong phrase is refused and nothing runs); approved, the stop runs against a
 * real systemd (a `systemd --user` instance, through Control's real handler in this process);
 * the other request is rejected with a note; the outcomes show in the Decided table.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { generateKeyPairSync } from "node:crypto";
import { type Browser } from "playwright-core";
import { requireComponent } from "../support/ci.ts";
import { haveChromium, launchChromium, signIn, watchedPage } from "../support/browser.ts";
import { testDatabase, type TestDb } from "../support/db.ts";
import { startSystemdUser, systemdUserUnavailable, type SystemdUser } from "../support/systemd-user.ts";
import { createControlHandler } from "../../agent/control/process.ts";
import { createServiceHandler } from "../../agent/control/services/index.ts";
import { createSystemd } from "../../agent/control/services/systemd.ts";
import { mcpClient, person, PASSWORD, startMcpServer, textOf, token, type McpTestServer } from "../mcp/support.ts";

const unavailable = systemdUserUnavailable();
const ready = haveChromium() &&
  requireComponent(unavailable === null, `a systemd user instance (${unavailable})`);

let db: TestDb;
let srv: McpTestServer;
let browser: Browser;
let sd: SystemdUser;
let agentId = 0;
const PERMS = ["ai.assistant.use", "ai.assistant.act", "hosts.view", "services.view", "services.stop", "services.restart"];

beforeAll(async () => {
  if (!ready) return;
  sd = await startSystemdUser();
  const unit = (d: string) => `[Unit]\nDescription=${d}\n[Service]\nExecStart=/bin/sleep 600\n`;
  await sd.addUnit("sshd.service", unit("stand-in for the SSH daemon"));
  await sd.addUnit("servermind-agent.service", unit("stand-in for the agent unit"));
  for (const u of ["sshd.service", "servermind-agent.service"]) expect((await sd.ctl("start", "--", u)).code).toBe(0);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const control = createControlHandler({
    key: publicKey, get agentId() { return agentId; },
    services: createServiceHandler(() => ({ manager: createSystemd({ user: true, env: sd.env }) })),
  });
  db = await testDatabase(6);
  srv = await startMcpServer(db, { commandKey: privateKey, dispatch: async (_id, command) => (await control({ t: "command", command })).result });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.stop();
  await db?.drop();
  await sd?.stop();
});

const active = async (unit: string) => (await sd.ctl("show", "--property=ActiveState", "--value", "--", unit)).out.trim();

test.skipIf(!ready)("a queued AI request shows the client's reason; approve needs the phrase and the password and then runs; reject works; outcomes show", async () => {
  const { sql } = db;
  const [a] = await sql`insert into agents (hostname, public_key, tags, last_seen) values ('web-7', ${Buffer.alloc(32, 7)}, ${["group:web"]}, now()) returning id`;
  agentId = Number(a!.id);
  const owner = await person(db, "aiowner", PERMS);
  await person(db, "rita", PERMS);

  // the AI client asks over MCP; both are dangerous, so both are queued
  const client = await mcpClient(srv.url, await token(db, owner.id, PERMS, { clientName: "ops-bot" }), "ops-bot", "0.4.0");
  const ask = async (unit: string, reason: string) =>
    Number(/queued for approval, id (\d+)/.exec(textOf(await client.callTool({ name: "service_action", arguments: { host_id: agentId, unit, op: "stop", reason } })))![1]);
  const sshdId = await ask("sshd", "sshd is spinning at 100% CPU since 03:12; stop it until we investigate");
  const agentReq = await ask("servermind-agent", "the agent looks stuck; stop it");
  await client.close();
  expect(await active("sshd.service")).toBe("active");

  const { ctx, page, problems } = await watchedPage(browser);
  await signIn(page, srv.url, "rita", PASSWORD);

  await page.goto(`${srv.url}/ai/approvals`);
  const req = page.locator(`#ai-request-${sshdId}`);
  const text = await req.innerText();
  expect(text).toContain("Reason given by ops-bot 0.4.0: sshd is spinning at 100% CPU since 03:12; stop it until we investigate");
  expect(await req.locator("h3").textContent()).toBe(`Request ${sshdId}: service_action on web-7`);
  expect(text).toContain("services.stop");
  expect(text).toContain(`approve request ${sshdId}`);
  expect(await page.locator(`#ai-request-${agentReq}`).innerText()).toContain("the agent looks stuck; stop it");

  // the phrase field is required by the form itself; a wrong phrase reaches the server and is refused
  await req.locator("button[type=submit]", { hasText: "Approve" }).click();
  expect(await req.locator("input[name=confirm]").evaluate((e: HTMLInputElement) => e.validity.valueMissing)).toBe(true);
  expect(page.url()).toBe(`${srv.url}/ai/approvals`);
  await req.locator("input[name=confirm]").fill("approve it");
  await req.locator("input[name=reauth]").fill(PASSWORD);
  const posted = (path: string) => page.waitForResponse((r) => r.request().method() === "POST" && new URL(r.url()).pathname === path);
  const [refused] = await Promise.all([posted(`/ai/approvals/${sshdId}/approve`), req.locator("button[type=submit]", { hasText: "Approve" }).click()]);
  expect(refused.status()).toBe(403);
  await page.waitForLoadState();
  expect(await refused.text()).toContain(`Type approve request ${sshdId} exactly to confirm this action.`);
  expect(await active("sshd.service")).toBe("active");
  expect((await sql`select status from ai_approvals where id = ${sshdId}`)[0]!.status).toBe("pending");

  // the right phrase and the password: approved, run, shown
  await page.goto(`${srv.url}/ai/approvals`);
  await page.locator(`#ai-request-${sshdId} input[name=confirm]`).fill(`approve request ${sshdId}`);
  await page.locator(`#ai-request-${sshdId} input[name=reauth]`).fill(PASSWORD);
  const [approved] = await Promise.all([posted(`/ai/approvals/${sshdId}/approve`), page.locator(`#ai-request-${sshdId} button[type=submit]`, { hasText: "Approve" }).click()]);
  expect(approved.status()).toBe(200);
  await page.locator("#ai-notice").waitFor({ timeout: 15_000 });
  expect(await page.locator("#ai-notice").innerText()).toContain(`Request ${sshdId} approved and run: ok`);
  expect(await active("sshd.service")).toBe("inactive");
  const done = await page.locator(`#ai-decided-${sshdId}`).innerText();
  expect(done).toContain("approved");
  expect(done).toContain("rita");
  expect(done).toContain("ok");
  expect(await page.locator(`#ai-request-${sshdId}`).count()).toBe(0);

  // reject the other with a note: never runs
  await page.locator(`#ai-request-${agentReq} input[name=note]`).fill("never stop the agent from an AI client");
  const [rejectedRes] = await Promise.all([posted(`/ai/approvals/${agentReq}/reject`), page.locator(`#ai-request-${agentReq} button[type=submit]`, { hasText: "Reject" }).click()]);
  expect(rejectedRes.status()).toBe(200);
  await page.locator("#ai-notice", { hasText: "rejected" }).waitFor({ timeout: 15_000 });
  expect(await page.locator("#ai-notice").innerText()).toContain(`Request ${agentReq} rejected.`);
  const rejected = await page.locator(`#ai-decided-${agentReq}`).innerText();
  expect(rejected).toContain("rejected");
  expect(await active("servermind-agent.service")).toBe("active");
  expect(await page.locator("section.card").first().innerText()).toContain("Nothing is waiting.");
  await page.screenshot({ path: "test-artifacts/ai-approvals.png", fullPage: true });

  const decisions = await sql`select action, actor_name, success, details from audit_log where category = 'ai_operation' and action like 'ai.%' order by id`;
  expect(decisions.map((d) => [d.action, d.actor_name, d.success, d.details.outcome])).toEqual([["ai.approve", "rita", true, "ok"], ["ai.reject", "rita", true, "rejected"]]);
  expect(decisions[0]!.details).toMatchObject({ client: { name: "ops-bot", version: "0.4.0" }, approvedBy: "rita", dangerous: true, reauth: "password" });
  expect(problems).toEqual([]);
  await ctx.close();
}, 120_000);
