/**
 * The security feature's background work, started by src/main.ts.
 */
import type { Sql } from "postgres";
import { FrameKind, type FrameBody } from "../ingest/frame/frame.ts";
import { consumeScanEvents } from "./posture.ts";
import { runAutoRemediation } from "./auto-remediate.ts";
import { scoreHost } from "./score.ts";
import type { CommandDeps } from "./issue.ts";
import { HostScope } from "../auth/host-scope.ts";
import { listHosts } from "../store/postgres/queries-console.ts";

/** The jobs act for the server itself, on every host. */
const AUTO_SCOPE = HostScope.system("auto-remediation job");
const SCORE_SCOPE = HostScope.system("security score job");

/**
 * Turns shipped CIS scans into posture, runs enabled auto-remediation, and scores hosts. The
 * posture job runs a quarter second after a CIS scan's event commits (so an on-demand scan
 * shows at once) and every 30 s to catch up; one run at a time.
 */
export function startSecurityJobs(sql: Sql, deps: CommandDeps) {
  const fail = (name: string) => (e: unknown) => console.error(`${name} failed: ${e instanceof Error ? e.message : e}`);
  const every = (ms: number, job: () => Promise<unknown>, name: string) => setInterval(() => void job().catch(fail(name)), ms);
  let running: Promise<void> | undefined;
  let again = false;
  const posture = async (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        while ((await consumeScanEvents(sql)) > 0);
        await runAutoRemediation(deps, AUTO_SCOPE);
      } while (again);
    })().finally(() => (running = undefined));
    return running;
  };
  let soon: ReturnType<typeof setTimeout> | undefined;
  const timers = [
    every(30_000, posture, "security posture job"),
    every(15 * 60_000, async () => {
      for (const host of await listHosts(sql, SCORE_SCOPE)) await scoreHost(sql, host);
    }, "security score job"),
  ];
  const scanStored = () => {
    soon ??= setTimeout(() => {
      soon = undefined;
      void posture().catch(fail("security posture job"));
    }, 250);
  };
  return {
    /** For the ingest path's onStored: a committed CIS scan schedules the posture job. */
    onStored: (data: FrameBody) => {
      if (data.kind === FrameKind.SecurityEvents && data.body.events.some((e) => e.type === "cis.scan")) scanStored();
    },
    stop() {
      timers.forEach(clearInterval);
      clearTimeout(soon);
    },
  };
}
