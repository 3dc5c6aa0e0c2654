/**
 * Enrolling from the console, as a new user does it: the server runs as `npm start` runs it
 * (src/main.ts in its own process) with no agent binaries built, builds this machine's binary
 * itself at start, shows the build on the enrollment page, and the one-liner copied from the
 * page, run by a real sh, downloads install.sh and the binary pinned to the server's key,
 * installs into a temporary prefix and enrolls the agent. A tampered pin, a fingerprint that is
 * not the server's and an unreachable server all fail the command with a non-zero status.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser } from "playwright-core";
import { haveChromium, launchChromium, signIn, watchedPage } from "../support/browser.ts";
import { startServerProcess, type ServerProcess } from "../support/server-process.ts";
import { createRole } from "../../src/auth/roles.ts";
import { createUser } from "../../src/auth/users.ts";
import { DEFAULT_SETTINGS } from "../../src/settings/console-settings.ts";
import { createSelfSigned } from "../../src/tls/self-signed.ts";
import { pubkeyPin } from "../../src/downloads/routes.ts";

const PASSWORD = "Cobalt-Meadow-Lantern-9";
const chromiumReady = haveChromium();
const hostTarget = process.arch === "arm64" ? "linux-arm64" : "linux-x64";

let srv: ServerProcess;
let browser: Browser;
const scratch = mkdtempSync(join(tmpdir(), "sm-enroll-e2e-"));

beforeAll(async () => {
  if (!chromiumReady) return;
  const dist = join(scratch, "dist");
  srv = await startServerProcess((port) => ({
    SERVERMIND_PUBLIC_URL: `https://127.0.0.1:${port}`,
    SERVERMIND_AGENT_DIST: dist,
    SERVERMIND_AGENT_BUILD: "true",
    SERVERMIND_AGENT_BUILD_TARGETS: hostTarget,
  }));
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await srv?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** Runs a command line in sh as a user pastes it, the agent installing into `dir`. */
async function runLine(line: string, dir: string): Promise<{ code: number; out: string }> {
  const p = Bun.spawn(["sh", "-c", line], {
    env: {
      ...process.env, PREFIX: join(dir, "bin"), SERVERMIND_NO_SERVICE: "1",
      SERVERMIND_AGENT_DIR: join(dir, "state"), SERVERMIND_AGENT_RUN_DIR: join(dir, "run"), SERVERMIND_AGENT_DROP_PRIVILEGES: "false",
    },
    stdout: "pipe", stderr: "pipe", timeout: 60_000,
  });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out: out + err };
}

test.skipIf(!chromiumReady)("npm start builds the agent, the console's one-liner pins the server, installs and enrolls; tampering fails loudly", async () => {
  const { sql } = srv.db;
  const role = await createRole(sql, "enroller", "", ["hosts.view", "agents.enroll"], []);
  await createUser(sql, { username: "erin", password: PASSWORD, roleIds: [role] }, DEFAULT_SETTINGS.password);

  const { ctx, page, problems } = await watchedPage(browser);
  await signIn(page, srv.url, "erin", PASSWORD);
  await page.goto(`${srv.url}/enrollment`);

  // the host's binary is built by the server itself; the page follows the build without a reload
  const hostRow = page.locator(`#agent-downloads tr[data-target="${hostTarget}"]`);
  await hostRow.locator("a").waitFor({ timeout: 120_000 });
  expect(await hostRow.getAttribute("data-state")).toBe("ready");
  expect(srv.output()).toContain(`agent binaries: ${hostTarget} built in`);
  // targets not built are text, not links that answer 404
  const other = page.locator(`#agent-downloads tr[data-target="darwin-arm64"]`);
  expect(await other.locator("a").count()).toBe(0);
  expect(await other.innerText()).toContain("not built on this server");
  expect(await page.locator("#public-url").innerText()).toBe(srv.url);

  await page.fill("#token-form input[name=label]", "e2e");
  await page.click("#token-form button[type=submit]");
  const line = (await page.locator("#token-result pre.oneliner").innerText({ timeout: 10_000 })).trim();
  await page.screenshot({ path: "test-artifacts/enroll-one-liner.png", fullPage: true });
  const pin = (await page.locator("#server-pin").innerText()).trim();
  const fingerprint = (await page.locator("#server-fingerprint").innerText()).trim();
  expect(pin).toMatch(/^sha256\/\/[A-Za-z0-9+/]{43}=$/);
  expect(line).toContain(`--pinnedpubkey '${pin}' ${srv.url}/install.sh`);
  expect(line).toContain(`--fingerprint ${fingerprint}`);
  expect(line).not.toContain("| sh");

  // a pin of another key: curl refuses the server, the command fails, nothing is installed
  const tampered = mkdtempSync(join(scratch, "tampered-"));
  const otherPin = pubkeyPin(createSelfSigned(["127.0.0.1"]).certPem);
  const refused = await runLine(line.replace(pin, otherPin), tampered);
  expect(refused.out).toMatch(/pinned public key|\(90\)/);
  expect(refused.code).toBe(90);
  expect(existsSync(join(tampered, "bin", "servermind-agent"))).toBe(false);

  // a fingerprint that is not the server's: install.sh stops before downloading
  const wrongFp = mkdtempSync(join(scratch, "wrong-fp-"));
  const stopped = await runLine(line.replace(fingerprint, "cd".repeat(32)), wrongFp);
  expect(stopped.code).not.toBe(0);
  expect(stopped.out).toContain("is not the certificate of");
  expect(existsSync(join(wrongFp, "bin", "servermind-agent"))).toBe(false);

  // a server that does not answer: curl's failure is the command's
  const down = await runLine(line.replace(srv.url, "https://127.0.0.1:9"), mkdtempSync(join(scratch, "down-")));
  expect(down.code).not.toBe(0);

  // the line as shown: installs into the temporary prefix and enrolls
  const good = mkdtempSync(join(scratch, "good-"));
  const r = await runLine(line, good);
  expect(r.out).toContain(`${hostTarget} binary verified`);
  expect(r.out).toContain('"enrolled":true');
  expect(r.code).toBe(0);
  expect(existsSync(join(good, "bin", "servermind-agent"))).toBe(true);
  const agents = await sql`select hostname from agents where revoked_at is null`;
  expect(agents.length).toBe(1);
  expect(problems).toEqual([]);
  await ctx.close();
}, 240_000);
