/**
 * The fleet of the service-operation end-to-end tests: a real `systemd --user` (optionally with
 * its journald) holding the test's units, a real server, one compiled agent running against it
 * with Control driving that systemd, and a second agent of the same group that is enrolled but
 * not running (last seen ten minutes ago: offline), so group runs meet an offline host.
 */
import { rmSync } from "node:fs";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, type AgentRun, type E2eServer } from "./agent-harness.ts";
import { requireComponent } from "./ci.ts";
import { startSystemdUser, systemdUserUnavailable, type SystemdUser } from "./systemd-user.ts";

export interface ServiceFleet {
  server: E2eServer;
  sd: SystemdUser;
  agent: AgentRun;
  /** the running agent's host */
  agentId: number;
  hostname: string;
  /** the enrolled, offline agent's host (same tag) */
  idleId: number;
  stop(): Promise<void>;
}

/** Whether the tests can run: a systemd user instance, or a loud skip (a failure under CI=true). */
export function serviceFleetAvailable(o: { journal?: boolean } = {}): boolean {
  const unavailable = systemdUserUnavailable(o);
  return requireComponent(unavailable === null, `a systemd user instance (${unavailable})`);
}

export async function startServiceFleet(o: {
  journal?: boolean;
  /** unit name → unit file text */
  units: Record<string, string>;
  /** units started before the agent comes up */
  started?: string[];
  /** the tag both hosts carry, e.g. "group:web" */
  tag: string;
}): Promise<ServiceFleet> {
  const bin = await agentBinary();
  const sd = await startSystemdUser({ journal: o.journal });
  let server: E2eServer | undefined;
  let agent: AgentRun | undefined;
  let idleDir: string | undefined;
  const stop = async () => {
    await agent?.stop();
    await server?.close();
    await sd.stop();
    if (idleDir) rmSync(idleDir, { recursive: true, force: true });
  };
  try {
    for (const [name, text] of Object.entries(o.units)) await sd.addUnit(name, text);
    for (const u of o.started ?? []) {
      const r = await sd.ctl("start", "--", u);
      if (r.code !== 0) throw new Error(`systemctl --user start ${u} failed: ${r.out}`);
    }
    server = await startE2eServer();
    const { dir, env } = agentDirs();
    Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "5000", SERVERMIND_AGENT_SERVICE_MANAGER: "systemd-user", ...sd.env });
    if (o.journal) env.SERVERMIND_AGENT_JOURNAL_DIR = sd.journalDir!;
    const agentId = await enrollAgent(bin, env, server);
    agent = runAgent(bin, dir, env);
    const idle = agentDirs();
    idleDir = idle.dir;
    const idleId = await enrollAgent(bin, idle.env, server);
    const { sql } = server.db;
    await sql`update agents set tags = ${sql.array([o.tag])} where id in ${sql([agentId, idleId])}`;
    await sql`update agents set last_seen = now() - interval '10 minutes' where id = ${idleId}`;
    const hostname = (await sql`select hostname from agents where id = ${agentId}`)[0]!.hostname as string;
    return { server, sd, agent, agentId, hostname, idleId, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
