/**
 * Control's entry for security commands: loads the server command key the way Control already
 * keeps it (stateDir/control/server-command.pub, raw Ed25519 public key in base64) and returns a
 * handler for signed `cis.remediate` / `cis.rollback` commands. Snapshots live in
 * stateDir/control/snapshots. Without a key every command is refused.
 */
import { commandKeyPaths, readCommandKey } from "../../identity/command-key.ts";
import { createRemediator, type RemediationResult } from "./executor.ts";

export function createControlSecurityHandler(o: { root: string; stateDir: string; agentId: number }): (signed: unknown) => RemediationResult {
  const key = readCommandKey(o.stateDir);
  if (!key) return () => ({ ok: false, error: "no server command key is installed; every command is refused" });
  const r = createRemediator({ root: o.root, snapshotDir: commandKeyPaths(o.stateDir).snapshots, publicKey: key, agentId: o.agentId });
  return (signed) => r.execute(signed);
}
