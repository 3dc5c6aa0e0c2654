/**
 * Control's entry for security commands: loads the server command key the way Control already
 * keeps it (stateDir/control/server-command.pub, raw Ed25519 public key in base64) and returns a
 * handler for signed `cis.remediate` / `cis.rollback` commands. Snapshots live in
 * stateDir/control/snapshots. Without a key every command is refused.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { publicKeyFromBase64 } from "../../../src/ingest/frame/commands.ts";
import { createRemediator, type RemediationResult } from "./executor.ts";

export function createControlSecurityHandler(o: { root: string; stateDir: string; agentId: number }): (signed: unknown) => RemediationResult {
  let key;
  try {
    key = publicKeyFromBase64(readFileSync(join(o.stateDir, "control", "server-command.pub"), "utf8"));
  } catch {
    return () => ({ ok: false, error: "no server command key is installed; every command is refused" });
  }
  const r = createRemediator({ root: o.root, snapshotDir: join(o.stateDir, "control", "snapshots"), publicKey: key, agentId: o.agentId });
  return (signed) => r.execute(signed);
}
