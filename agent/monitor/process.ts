/**
 * The Monitor process: read-only security observations. For now it watches the integrity of a
 * few critical files (SHA-256, mode, owner) and reports each change as a security event through
 * Platform. The security issue adds its detectors here; Monitor never changes the system.
 */
import { createHash } from "node:crypto";
import { readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { packSecurity } from "../../src/ingest/frame/encode.ts";
import { FrameKind, type SecurityEvent } from "../../src/ingest/frame/frame.ts";
import { agentPaths, type AgentConfig } from "../config.ts";
import { createOutbox } from "../collect/outbox.ts";

const CRITICAL = /shadow|sudoers|authorized_keys/;

export interface FileFacts {
  sha256: string | null;
  mode: number | null;
  uid: number | null;
}

export function factsOf(path: string): FileFacts {
  let mode: number | null = null;
  let uid: number | null = null;
  try {
    const st = statSync(path);
    mode = st.mode & 0o7777;
    uid = st.uid;
  } catch {
    return { sha256: null, mode: null, uid: null };
  }
  try {
    return { sha256: createHash("sha256").update(readFileSync(path)).digest("hex"), mode, uid };
  } catch {
    return { sha256: null, mode, uid }; // exists but this user may not read it
  }
}

/** Compares `files` (absolute, read under `root`) with the baseline: one event per change; updates the baseline. */
export function checkFiles(root: string, files: string[], baseline: Record<string, FileFacts>, now: number): SecurityEvent[] {
  const events: SecurityEvent[] = [];
  for (const file of files) {
    const cur = factsOf(join(root, file));
    const old = baseline[file];
    baseline[file] = cur;
    if (!old) continue;
    if (old.sha256 !== cur.sha256 || old.mode !== cur.mode || old.uid !== cur.uid) {
      const type = cur.mode === null ? "file.removed" : old.mode === null ? "file.created" : "file.changed";
      events.push({ ts: now, type, severity: CRITICAL.test(file) ? 7 : 5, path: file, data: { before: old, after: cur } as unknown as Record<string, unknown> });
    }
  }
  return events;
}

export async function runMonitor(c: AgentConfig): Promise<() => Promise<void>> {
  const p = agentPaths(c);
  const baselineFile = join(p.monitorDir, "file-baseline.json");
  let baseline: Record<string, FileFacts> = {};
  try {
    baseline = JSON.parse(readFileSync(baselineFile, "utf8"));
  } catch {
    baseline = {};
  }
  const outbox = createOutbox({ socketPath: p.monitorSocket, log: (m) => console.error(`monitor: ${m}`) });
  const tick = () => {
    const events = checkFiles(c.root, c.watchFiles, baseline, Date.now());
    const save = () => {
      writeFileSync(baselineFile + ".tmp", JSON.stringify(baseline));
      renameSync(baselineFile + ".tmp", baselineFile);
    };
    if (events.length) outbox.push({ kind: FrameKind.SecurityEvents, items: events.length, createdMs: Date.now(), body: packSecurity({ events }), commit: save });
    else save();
  };
  tick();
  const timer = setInterval(tick, c.intervalMs);
  return async () => {
    clearInterval(timer);
    await outbox.flush(2000);
    outbox.close();
  };
}
