/**
 * The vendor's Ed25519 public key that licenses are verified against, compiled in. The
 * SERVERMIND_LICENSE_PUBLIC_KEY variable replaces it, for development and tests only: the server
 * logs that loudly at start, the license page and `license status` say so. It gives an operator
 * nothing they lack already (they run the server's code and could change this constant); it
 * lets the test suite run the real server, started from src/main.ts, with licenses signed by a
 * throwaway test key, where a build-time switch would need a second build of the server.
 */
import type { KeyObject } from "node:crypto";
import { publicKeyFromRaw } from "./format.ts";

/** Raw 32-byte Ed25519 public key, base64url. Replaced by the release's vendor key. */
export const VENDOR_PUBLIC_KEY = "-r9YKPWpZAtGY0OtH6fPv1etSPwjx1SapbQp-lCh-WI";

export interface VendorKey {
  key: KeyObject;
  /** True when SERVERMIND_LICENSE_PUBLIC_KEY replaced the compiled-in key. */
  overridden: boolean;
}

export function vendorKey(env: Record<string, string | undefined> = process.env): VendorKey {
  const o = env.SERVERMIND_LICENSE_PUBLIC_KEY?.trim();
  if (o) {
    try {
      return { key: publicKeyFromRaw(o), overridden: true };
    } catch (e) {
      throw new Error(`SERVERMIND_LICENSE_PUBLIC_KEY: ${e instanceof Error ? e.message : e}`);
    }
  }
  return { key: publicKeyFromRaw(VENDOR_PUBLIC_KEY), overridden: false };
}
