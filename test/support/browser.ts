/**
 * The real browser of the browser tests: Debian's chromium driven by playwright-core. The flags
 * are the ones this machine needs: no sandbox (tests run as root), no GPU, and none of
 * Chromium's own network traffic (background networking, component updates, sync), which the
 * closed network here refuses, many connections at a time.
 */
import { afterAll, beforeAll } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { requireComponent } from "./ci.ts";
import { startConsoleServer, type ConsoleServer } from "./console-server.ts";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

/** Whether a file's browser tests can run; a loud skip without chromium (a failure under CI=true). */
export function haveChromium(): boolean {
  return requireComponent(existsSync(CHROMIUM), "Debian chromium (/usr/bin/chromium, apt-get install chromium)");
}

/** Chromium, with `test-artifacts/` ready for the screenshots tests take when they fail. */
export function launchChromium(executablePath = CHROMIUM): Promise<Browser> {
  mkdirSync("test-artifacts", { recursive: true });
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

export interface WatchedPage {
  ctx: BrowserContext;
  page: Page;
  /** what the page reported that a console page never may: CSP refusals, script errors, and `watch` */
  problems: string[];
}

/** A page in a fresh context (its own cookies), watched for CSP refusals and script errors. */
export async function watchedPage(browser: Browser, opts: { width?: number; height?: number; watch?: RegExp } = {}): Promise<WatchedPage> {
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: opts.width ?? 1360, height: opts.height ?? 900 } });
  const page = await ctx.newPage();
  const problems: string[] = [];
  const watch = opts.watch ?? /Content Security Policy|Refused to/i;
  page.on("console", (m) => {
    if (watch.test(m.text())) problems.push(m.text());
  });
  page.on("pageerror", (e) => problems.push(String(e)));
  return { ctx, page, problems };
}

/** Signs in through the login form and waits for `landing` (the fleet page by default). */
export async function signIn(page: Page, url: string, username: string, password: string, landing: RegExp = /\/hosts$/): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill("#login-form input[name=username]", username);
  await page.fill("#login-form input[name=password]", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForURL(landing);
}

export interface ConsoleInBrowser {
  /** chromium is there: the file's tests run (they skip loudly otherwise; a failure under CI=true) */
  readonly ready: boolean;
  readonly srv: ConsoleServer;
  readonly browser: Browser;
}

/**
 * A file's console server (real server, its own fresh database) and chromium: started before
 * the file's tests (a `beforeAll` registered after this call runs after them, with both up),
 * stopped after them. Without chromium nothing starts.
 */
export function consoleInBrowser(o?: Parameters<typeof startConsoleServer>[0]): ConsoleInBrowser {
  const ready = haveChromium();
  let srv: ConsoleServer | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    if (!ready) return;
    srv = await startConsoleServer(o);
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await srv?.close();
  });
  return {
    ready,
    get srv() {
      return srv!;
    },
    get browser() {
      return browser!;
    },
  };
}
