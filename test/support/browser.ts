/**
 * The real browser of the browser tests: Debian's chromium driven by playwright-core. The flags
 * are the ones this machine needs: no sandbox (tests run as root), no GPU, and none of
 * Chromium's own network traffic (background networking, component updates, sync), which the
 * closed network here refuses, many connections at a time.
 */
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

export function launchChromium(executablePath = CHROMIUM): Promise<Browser> {
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}
