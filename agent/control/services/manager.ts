/** The service-manager interface Control's service operations run through, and its result shapes. */
import type { ServiceOp } from "../../../src/ingest/frame/service-commands.ts";
import type { OutputSink } from "../output.ts";

export interface UnitRow {
  unit: string;
  load: string;
  active: string;
  sub: string;
  description: string;
}

export interface JournalLine {
  /** milliseconds since the epoch */
  ts: number;
  priority: number | null;
  message: string;
}

export interface UnitStatus {
  unit: string;
  description: string;
  load: string;
  active: string;
  sub: string;
  /** enabled / disabled / static / masked ... ("" when unknown) */
  enabled: string;
  mainPid: number | null;
  since: string;
  fragment: string;
  journal: JournalLine[];
  /** why the journal is empty, when it could not be read */
  journalNote?: string;
}

export interface ActionOutcome {
  ok: boolean;
  exitCode: number | null;
  timedOut: boolean;
  /** what the manager printed (stdout + stderr), trimmed */
  output: string;
  /** the unit's state after the operation */
  after: { active: string; sub: string; enabled: string } | null;
  error?: string;
}

export interface ServiceManager {
  /** e.g. "systemd", "systemd (user instance)" */
  readonly name: string;
  list(): Promise<UnitRow[]>;
  status(unit: string, lines: number): Promise<UnitStatus>;
  /** `out` gets the operation's output while it runs (docs/protocol.md, `command-output`). */
  action(unit: string, op: ServiceOp, out?: OutputSink): Promise<ActionOutcome>;
}

export class ServiceError extends Error {}
