/**
 * Control's service operations: `service.list`, `service.status` (args: unit, lines?) and
 * `service.action` (args: unit, op). The command was verified (signature, agent, age, nonce,
 * allow-list) by Control's checker before it gets here; the arguments are checked again here.
 *
 * Which manager: SERVERMIND_AGENT_SERVICE_MANAGER = "auto" (default: systemd when PID 1 is
 * systemd, i.e. /run/systemd/system exists), "systemd", "systemd-user" (the root user's own
 * `systemd --user` instance: unprivileged setups and the tests) or "none". Without a supported
 * manager every command answers so, naming the init system. SERVERMIND_AGENT_JOURNAL_DIR names
 * a journal directory to read instead of the system's (containers whose journald writes
 * elsewhere, and the tests).
 */
import { existsSync, readFileSync } from "node:fs";
import { isServiceOp, normalizeUnit } from "../../../src/ingest/frame/service-commands.ts";
import { ServiceError, type ServiceManager } from "./manager.ts";
import { createSystemd } from "./systemd.ts";
import { NO_OUTPUT, type OutputSink } from "../output.ts";

export const SERVICE_ACTIONS: ReadonlySet<string> = new Set(["service.list", "service.status", "service.action"]);

export type Detected = { manager: ServiceManager } | { manager: null; init: string };

/** The name of PID 1 (as this process sees it). */
export function initName(root = "/"): string {
  try {
    return readFileSync(`${root.replace(/\/$/, "")}/proc/1/comm`, "utf8").trim() || "unknown";
  } catch {
    return "unknown";
  }
}

export function detectServiceManager(env: Record<string, string | undefined> = process.env): Detected {
  const want = (env.SERVERMIND_AGENT_SERVICE_MANAGER ?? "auto").trim() || "auto";
  const journalDir = env.SERVERMIND_AGENT_JOURNAL_DIR?.trim() || undefined;
  if (want === "systemd") return { manager: createSystemd({ journalDir }) };
  if (want === "systemd-user") return { manager: createSystemd({ user: true, journalDir }) };
  if (want === "none") return { manager: null, init: initName() };
  if (existsSync("/run/systemd/system")) return { manager: createSystemd({ journalDir }) };
  return { manager: null, init: initName() };
}

/** Runs one verified service command; never throws (errors become {ok: false, error}). */
export function createServiceHandler(detect: () => Detected = () => detectServiceManager()) {
  return async (action: string, args: Record<string, unknown>, out: OutputSink = NO_OUTPUT): Promise<Record<string, unknown>> => {
    const d = detect();
    if (!d.manager) return { ok: false, manager: null, init: d.init, error: `no supported service manager on this host (init is ${d.init})` };
    const m = d.manager;
    try {
      if (action === "service.list") {
        const units = await m.list();
        return { ok: true, manager: m.name, units };
      }
      const unit = normalizeUnit(args.unit);
      if (!unit) return { ok: false, manager: m.name, error: "unit must be a unit name of letters, digits and :_.@- (not starting with -)" };
      if (action === "service.status") {
        const lines = typeof args.lines === "number" && Number.isFinite(args.lines) ? args.lines : 20;
        return { ok: true, manager: m.name, status: await m.status(unit, lines) };
      }
      if (action === "service.action") {
        if (!isServiceOp(args.op)) return { ok: false, manager: m.name, unit, error: "op must be one of start, stop, restart, reload, enable, disable" };
        const t0 = performance.now();
        const done = await m.action(unit, args.op, out);
        return { manager: m.name, unit, op: args.op, ms: Math.round(performance.now() - t0), ...done };
      }
      return { ok: false, error: `unknown service action ${action}` };
    } catch (e) {
      return { ok: false, manager: m.name, error: e instanceof ServiceError ? e.message : `service operation failed: ${e instanceof Error ? e.message : e}` };
    }
  };
}
