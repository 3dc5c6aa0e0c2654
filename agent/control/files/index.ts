/**
 * Control's entry for file commands: verifies a signed `file.*` command (server command key,
 * agent id, freshness, nonce, allow-list), takes the path policy from its args and runs the
 * operation (./ops.ts). Results are `{ok: true, ...}` or `{ok: false, code, error}`; nothing
 * throws out of here.
 */
import { realpathSync } from "node:fs";
import { join } from "node:path";
import type { KeyObject } from "node:crypto";
import { createNonceSet, verifyCommand, type NonceSet } from "../../../src/ingest/frame/commands.ts";
import { commandKeyPaths, readCommandKey } from "../../identity/command-key.ts";
import { parsePolicy } from "./policy.ts";
import { FileOpError } from "./resolve.ts";
import { chmod, chown, list, read, remove, rename, rollback, write, type FilesContext } from "./ops.ts";

export const FILE_ACTIONS: ReadonlySet<string> = new Set(["file.list", "file.read", "file.write", "file.chmod", "file.chown", "file.rename", "file.delete", "file.rollback"]);

export interface FilesHandlerOptions {
  root: string;
  stateDir: string;
  /** Other agent directories to deny by host path (run dir with the sockets). */
  extraDenied?: string[];
  publicKey: KeyObject;
  agentId: number;
  now?: () => number;
  nonces?: NonceSet;
}

const real = (p: string) => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

export function fileSnapshotDir(stateDir: string) {
  return join(commandKeyPaths(stateDir).dir, "file-snapshots");
}

export function createFilesHandler(o: FilesHandlerOptions): (signed: unknown) => Record<string, unknown> {
  const nonces = o.nonces ?? createNonceSet();
  const now = o.now ?? Date.now;
  const ctx: FilesContext = {
    root: o.root,
    snapshotDir: fileSnapshotDir(o.stateDir),
    agentDirs: [o.stateDir, ...(o.extraDenied ?? [])].flatMap((d) => [d, real(d)]),
    now,
  };
  return (signed) => {
    const v = verifyCommand(signed, { publicKey: o.publicKey, agentId: o.agentId, allow: FILE_ACTIONS, now: now(), seen: nonces });
    if (!v.ok) return { ok: false, code: "refused", error: v.reason };
    const { action, args, id } = v.command;
    const policy = parsePolicy(args.policy);
    try {
      switch (action) {
        case "file.list": return { action, ...list(ctx, policy, args) };
        case "file.read": return { action, ...read(ctx, policy, args) };
        case "file.write": return { action, ...write(ctx, policy, args, id) };
        case "file.chmod": return { action, ...chmod(ctx, policy, args, id) };
        case "file.chown": return { action, ...chown(ctx, policy, args, id) };
        case "file.rename": return { action, ...rename(ctx, policy, args, id) };
        case "file.delete": return { action, ...remove(ctx, policy, args, id) };
        default: return { action, ...rollback(ctx, policy, args) };
      }
    } catch (e) {
      if (e instanceof FileOpError) return { ok: false, action, code: e.code, error: e.message };
      const err = e as NodeJS.ErrnoException;
      return { ok: false, action, code: "failed", error: `${action} failed: ${err.code ?? ""} ${err.message ?? e}`.trim() };
    }
  };
}

/** Control's handler from its installed key; without one every command is refused. */
export function createControlFilesHandler(o: { root: string; stateDir: string; runDir?: string; agentId: number }) {
  const key = readCommandKey(o.stateDir);
  if (!key) return () => ({ ok: false, error: "no server command key is installed; every command is refused" });
  return createFilesHandler({ root: o.root, stateDir: o.stateDir, extraDenied: o.runDir ? [o.runDir] : [], publicKey: key, agentId: o.agentId });
}
