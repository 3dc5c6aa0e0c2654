/**
 * The Control process: the only one that keeps root, and so the only one allowed to change the
 * system. It accepts a command only when (1) it arrives on its socket, which only Platform can
 * reach, (2) it is signed with the server's command key (Ed25519, installed at
 * stateDir/control/server-command.pub) over its canonical JSON, (3) it is not older than five
 * minutes and its nonce was not seen before, and (4) its name is on the allow-list.
 *
 * The server does not issue commands yet; the allow-list holds only "ping", which changes
 * nothing. Every other command is refused, and so is everything while no key is installed.
 */
import { createPublicKey, verify, type KeyObject } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { agentPaths, type AgentConfig } from "../config.ts";
import { listenIpc, type Message } from "../ipc/socket.ts";

export const ALLOWED_COMMANDS: Record<string, (args: Record<string, unknown>) => Message> = {
  ping: () => ({ t: "result", ok: true, result: "pong" }),
};

const MAX_AGE_MS = 5 * 60_000;

export function createCommandChecker(key: KeyObject | undefined, now: () => number = Date.now) {
  const seen = new Map<string, number>();
  return (m: Message): Message => {
    if (m.t !== "command") return { t: "error", message: "unknown request" };
    if (!key) return { t: "error", message: "no server command key is installed; every command is refused" };
    const { command, args, issuedMs, nonce, signature } = m as Record<string, unknown>;
    if (typeof command !== "string" || typeof nonce !== "string" || typeof issuedMs !== "number" || !(signature instanceof Uint8Array)) {
      return { t: "error", message: "command needs command, args, issuedMs, nonce and signature" };
    }
    const payload = Buffer.from(JSON.stringify({ command, args: args ?? {}, issuedMs, nonce }));
    let ok = false;
    try {
      ok = verify(null, payload, key, signature);
    } catch {
      ok = false;
    }
    if (!ok) return { t: "error", message: "command signature does not verify with the server command key" };
    const t = now();
    if (Math.abs(t - issuedMs) > MAX_AGE_MS) return { t: "error", message: "command is older than five minutes or from the future" };
    for (const [n, at] of seen) if (t - at > 2 * MAX_AGE_MS) seen.delete(n);
    if (seen.has(nonce) || seen.size > 100_000) return { t: "error", message: "command nonce was already used" };
    seen.set(nonce, t);
    const run = ALLOWED_COMMANDS[command];
    if (!run) return { t: "error", message: `command "${command}" is not on the allow-list` };
    return run((args ?? {}) as Record<string, unknown>);
  };
}

export async function runControl(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  mkdirSync(dirname(p.controlSocket), { recursive: true });
  let key: KeyObject | undefined;
  try {
    const raw = readFileSync(join(c.stateDir, "control", "server-command.pub"));
    key = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: Buffer.from(raw.toString("utf8").trim(), "base64").toString("base64url") }, format: "jwk" });
  } catch {
    key = undefined;
  }
  const server = listenIpc(p.controlSocket, createCommandChecker(key));
  return async () => server.stop();
}
