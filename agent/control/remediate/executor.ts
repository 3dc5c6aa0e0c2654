/**
 * The remediation executor inside Control. It acts only on a command that verifies against the
 * server's command key (src/ingest/frame/commands.ts) and names an allowed action:
 *
 *   cis.remediate {controls: string[], dryRun: boolean}
 *     dry run: the exact diff (unified diff per file, plus mode/owner changes) and the effects on
 *              the running system (./effects.ts: sshd reload, live sysctl), nothing done.
 *     apply:   snapshot every path the plan touches, write, validate (sshd -t; a rejected
 *              configuration is rolled back at once and reported), carry out the effects,
 *              re-check, report verdicts.
 *   cis.rollback {snapshot: string}
 *     restore the snapshot exactly, undo its effects (reload sshd again, put the running sysctl
 *     values back), re-check the controls it covered.
 *
 * Everything happens under `root` (a test root or "/"); symlinks cannot lead writes outside it.
 */
import { chmodSync, chownSync, existsSync, mkdirSync } from "node:fs";
import type { KeyObject } from "node:crypto";
import { dirname, join } from "node:path";
import { CONTROLS, type Control } from "../../monitor/cis/controls.ts";
import { evaluate, type CheckResult } from "../../monitor/cis/checks.ts";
import { createOverlayFs, createRootFs, type PathState } from "../../monitor/cis/root-fs.ts";
import { createNonceSet, verifyCommand, type Command, type NonceSet } from "../../../src/ingest/frame/commands.ts";
import { planControl, PlanError } from "./plan.ts";
import { unifiedDiff } from "./diff.ts";
import { capture, loadSnapshot, restore, saveSnapshot, writeFileAtomic, type Snapshot } from "./snapshot.ts";
import { apply as applyEffects, createDetachedServices, createHostServices, planEffects, validate, type Effect, type EffectOutcome, type HostServices } from "./effects.ts";

export const REMEDIATION_ACTIONS: ReadonlySet<string> = new Set(["cis.remediate", "cis.rollback"]);
export const MAX_CONTROLS_PER_COMMAND = 200;

export interface RemediatorOptions {
  root: string;
  snapshotDir: string;
  publicKey: KeyObject;
  agentId: number;
  controls?: Control[];
  now?: () => number;
  nonces?: NonceSet;
  /** How effects reach the running system; default: the host when root is "/", nothing otherwise. */
  services?: HostServices;
}

export interface FileChange {
  path: string;
  diff: string;
  before: { exists: boolean; mode?: string; uid?: number; gid?: number };
  after: { exists: boolean; mode?: string; uid?: number; gid?: number };
}

export type RemediationResult =
  | { ok: false; action?: string; error: string; effects?: EffectOutcome[]; snapshot?: string }
  | {
      ok: true;
      action: "cis.remediate";
      dryRun: boolean;
      commandId: string;
      changes: FileChange[];
      /** Planned (dry run) or carried out, with their outcome. */
      effects: Array<Effect | EffectOutcome>;
      skipped: Array<{ id: string; reason: string }>;
      snapshot?: string;
      verdicts: Record<string, CheckResult["status"]>;
    }
  | { ok: true; action: "cis.rollback"; commandId: string; snapshot: string; restored: string[]; effects: EffectOutcome[]; verdicts: Record<string, CheckResult["status"]> };

const mode = (m?: number) => (m === undefined ? undefined : m.toString(8).padStart(4, "0"));

export function createRemediator(o: RemediatorOptions) {
  const controls = o.controls ?? CONTROLS;
  const nonces = o.nonces ?? createNonceSet();
  const now = o.now ?? Date.now;
  const services = o.services ?? (o.root === "/" ? createHostServices() : createDetachedServices(o.root));
  const failed = (outcomes: EffectOutcome[]) => outcomes.filter((x) => x.status === "failed");

  const verdicts = (ids: string[]) => {
    const fs = createRootFs(o.root);
    const out: Record<string, CheckResult["status"]> = {};
    for (const id of ids) {
      const c = controls.find((x) => x.id === id);
      if (c) out[id] = evaluate(fs, c.check).status;
    }
    return out;
  };

  function remediate(cmd: Command): RemediationResult {
    const ids = cmd.args.controls;
    const dryRun = cmd.args.dryRun !== false; // only an explicit false applies
    if (!Array.isArray(ids) || !ids.length || ids.length > MAX_CONTROLS_PER_COMMAND || !ids.every((x) => typeof x === "string")) {
      return { ok: false, action: cmd.action, error: `args.controls must list 1-${MAX_CONTROLS_PER_COMMAND} control ids` };
    }
    // A command id runs once, across restarts too: its snapshot is the record.
    if (!dryRun && existsSync(join(o.snapshotDir, `snap-${cmd.id}.json`))) return { ok: false, action: cmd.action, error: `command ${cmd.id} was already executed` };
    const base = createRootFs(o.root);
    const overlay = createOverlayFs(base);
    const skipped: Array<{ id: string; reason: string }> = [];
    const planned: string[] = [];
    for (const id of ids as string[]) {
      const c = controls.find((x) => x.id === id);
      if (!c) {
        skipped.push({ id, reason: "unknown control" });
        continue;
      }
      try {
        if (planControl(overlay, c)) planned.push(id);
        else skipped.push({ id, reason: "already passes" });
      } catch (e) {
        if (!(e instanceof PlanError)) throw e;
        skipped.push({ id, reason: e.message });
      }
    }
    const pending = [...overlay.pending()].sort(([a], [b]) => a.localeCompare(b));
    const changes: FileChange[] = pending.map(([path, after]) => {
      const st = base.stat(path);
      const beforeText = st && !st.isDir ? base.read(path) : null;
      const afterText = after.exists && !after.isDir ? (after.content ?? beforeText) : null;
      return {
        path,
        diff: st?.isDir || after.isDir ? "" : beforeText === afterText ? "" : unifiedDiff(path, beforeText, afterText),
        before: st ? { exists: true, mode: mode(st.mode), uid: st.uid, gid: st.gid } : { exists: false },
        after: { exists: after.exists, mode: mode(after.mode), uid: after.uid, gid: after.gid },
      };
    });
    const effects = planEffects(
      planned.map((id) => controls.find((x) => x.id === id)!),
      changes.filter((c) => c.diff !== "").map((c) => c.path),
      base,
    );
    if (dryRun || !pending.length) return { ok: true, action: "cis.remediate", dryRun, commandId: cmd.id, changes, effects, skipped, verdicts: verdicts(ids as string[]) };

    // Snapshot first; nothing is written unless the snapshot is safely on disk.
    const hosts = pending.map(([path]) => {
      const host = base.hostPath(path);
      if (!host) throw new Error(`path ${path} cannot be resolved inside ${o.root}`);
      return [path, host] as const;
    });
    // the parents' attributes too: creating or renaming a file changes its directory's mtime
    const touched = new Map<string, string>(hosts.map(([p, h]) => [h, p]));
    for (const [p, h] of hosts) if (!touched.has(dirname(h)) && dirname(h).startsWith(o.root)) touched.set(dirname(h), dirname(p));
    const snap: Snapshot = { id: `snap-${cmd.id}`, commandId: cmd.id, createdMs: now(), controls: planned, paths: [...touched].map(([h, p]) => capture(p, h)), effects };
    saveSnapshot(o.snapshotDir, snap);
    try {
      for (let i = 0; i < pending.length; i++) apply(hosts[i][1], pending[i][1]);
    } catch (e) {
      restore(snap); // a half-applied remediation is rolled back at once
      return { ok: false, action: cmd.action, error: `remediation failed and was rolled back: ${e instanceof Error ? e.message : e}` };
    }
    // A configuration the service rejects is never reloaded: the files go back as they were.
    const check = validate(effects, services);
    if (check?.status === "failed") {
      restore(snap);
      return { ok: false, action: cmd.action, error: `sshd -t rejected the new configuration; the change was rolled back and sshd was not reloaded: ${check.output}`, effects: [check] };
    }
    const done = [...(check ? [check] : []), ...applyEffects(effects, services)];
    const bad = failed(done);
    if (bad.length) {
      // the files are valid and stay written (they apply at the next restart); the snapshot can undo them
      return { ok: false, action: cmd.action, error: `written, but not applied to the running system: ${bad.map((x) => x.output).join("; ")}; snapshot ${snap.id} rolls the change back`, effects: done, snapshot: snap.id };
    }
    return { ok: true, action: "cis.remediate", dryRun: false, commandId: cmd.id, changes, effects: done, skipped, snapshot: snap.id, verdicts: verdicts(ids as string[]) };
  }

  function rollback(cmd: Command): RemediationResult {
    const id = cmd.args.snapshot;
    if (typeof id !== "string") return { ok: false, action: cmd.action, error: "args.snapshot must be a snapshot id" };
    let snap: Snapshot;
    try {
      snap = loadSnapshot(o.snapshotDir, id);
    } catch (e) {
      return { ok: false, action: cmd.action, error: e instanceof Error ? e.message : String(e) };
    }
    restore(snap);
    const effects = snap.effects ?? [];
    const check = validate(effects, services);
    if (check?.status === "failed") {
      return { ok: false, action: cmd.action, error: `the files were restored, but sshd -t rejects them, so sshd was not reloaded: ${check.output}`, effects: [check], snapshot: id };
    }
    const done = [...(check ? [check] : []), ...applyEffects(effects, services, true)];
    const bad = failed(done);
    if (bad.length) return { ok: false, action: cmd.action, error: `the files were restored, but not applied to the running system: ${bad.map((x) => x.output).join("; ")}`, effects: done, snapshot: id };
    return { ok: true, action: "cis.rollback", commandId: cmd.id, snapshot: id, restored: snap.paths.map((p) => p.path), effects: done, verdicts: verdicts(snap.controls) };
  }

  return {
    /** Verifies and executes one signed command; never throws for bad input. */
    execute(signed: unknown): RemediationResult {
      const v = verifyCommand(signed, { publicKey: o.publicKey, agentId: o.agentId, allow: REMEDIATION_ACTIONS, now: now(), seen: nonces });
      if (!v.ok) return { ok: false, error: v.reason };
      return v.command.action === "cis.remediate" ? remediate(v.command) : rollback(v.command);
    },
  };
}

function apply(host: string, s: PathState) {
  if (!s.exists) throw new Error(`removing ${host} is not a remediation this executor performs`);
  if (s.isDir || s.content === undefined) {
    // directories, and files whose bytes stay as they are: attributes only, same inode
    if (s.isDir) mkdirSync(host, { recursive: true });
    chownSync(host, s.uid ?? 0, s.gid ?? 0);
    chmodSync(host, s.mode ?? 0o755);
    return;
  }
  writeFileAtomic(host, s.content ?? "", s.mode ?? 0o644, s.uid ?? 0, s.gid ?? 0);
}
