/**
 * A command channel whose far end is the agent's real Control remediation executor
 * (agent/control/remediate/executor.ts) working on a prepared root: commands are signed by the
 * console with a fresh key, verified by the executor with its public half, and carried out on
 * the files under `root`, its snapshots kept in `snapshotDir` (the caller makes and removes both).
 * For browser tests of the remediation UI without an agent process.
 */
import { generateKeyPairSync } from "node:crypto";
import { createRemediator } from "../../agent/control/remediate/executor.ts";
import type { SecurityCommandDeps } from "../../src/web/deps.ts";

export function controlChannel(root: string, snapshotDir: string): SecurityCommandDeps {
  const keys = generateKeyPairSync("ed25519");
  const executors = new Map<number, ReturnType<typeof createRemediator>>();
  return {
    commandKey: keys.privateKey,
    async dispatch(agentId, command) {
      let x = executors.get(agentId);
      if (!x) executors.set(agentId, (x = createRemediator({ root, snapshotDir, publicKey: keys.publicKey, agentId })));
      return x.execute(command);
    },
  };
}
