/**
 * servermind-agent: the one binary of the agent.
 *
 *   servermind-agent enroll --server URL --token TOKEN [--fingerprint SHA256]
 *   servermind-agent run           supervise the four processes (as root: privilege split)
 *   servermind-agent status        connection, transport, spool depth, last ack, processes
 *   servermind-agent version
 *   servermind-agent internal collector|monitor|control|platform   (started by `run`)
 */
import { chmodSync, chownSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { agentPaths, AGENT_VERSION, loadAgentConfig, ROLES, type AgentConfig } from "./config.ts";
import { commandKeyPaths } from "./identity/command-key.ts";
import { IdentityError } from "./identity/error.ts";
import { ensureUsers, prepareLayout, readGroupsOf, USERS } from "./supervisor/layout.ts";
import { CAP_DAC_READ_SEARCH, dropPrivileges, readOnlyLaunch, verifyDropped } from "./supervisor/privileges.ts";
import { createSupervisor, type ProcessState } from "./supervisor/supervisor.ts";

/** Set by the supervisor for a process it started already dropped (setpriv). */
const LAUNCHED_DROPPED = "SERVERMIND_AGENT_LAUNCHED_DROPPED";

type Role = (typeof ROLES)[number];
/** Each process loads only its own code (dynamic imports), which keeps every process smaller. */
const RUNNERS: Record<Role, () => Promise<(c: AgentConfig) => Promise<() => Promise<void>>>> = {
  platform: async () => (await import("./platform/process.ts")).runPlatform,
  control: async () => (await import("./control/process.ts")).runControl,
  monitor: async () => (await import("./monitor/process.ts")).runMonitor,
  collector: async () => (await import("./collect/process.ts")).runCollector,
};
const ROLE_USER: Record<Role, string | undefined> = {
  platform: USERS.platform,
  collector: USERS.collector,
  monitor: USERS.monitor,
  control: undefined, // keeps root
};

const USAGE = `usage: servermind-agent enroll --server URL --token TOKEN [--fingerprint SHA256]
       servermind-agent run | status | version`;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

const isRoot = () => process.getuid?.() === 0;

/** How to start this same program again: the compiled binary alone, or bun + this script. */
export function selfArgv(): string[] {
  return Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/") ? [process.execPath] : [process.execPath, Bun.main];
}

async function cmdEnroll(c: AgentConfig, args: string[]): Promise<number> {
  const server = flag(args, "--server");
  const token = flag(args, "--token") ?? process.env.SERVERMIND_AGENT_TOKEN;
  if (!server || !token) {
    console.error(USAGE);
    return 2;
  }
  // loaded here, not at the top: the supervisor and the roles that never enroll skip node:tls,
  // node:crypto and bun:sqlite (each process pays for every built-in module it loads)
  const [{ enroll }, { createSecretFile }, { createIdentityStore }] = await Promise.all([
    import("./identity/enroll.ts"), import("./identity/secret.ts"), import("./identity/store.ts"),
  ]);
  const users = isRoot() && c.dropPrivileges ? ensureUsers() : undefined;
  prepareLayout(c, users);
  const p = agentPaths(c);
  createSecretFile(p.secretFile);
  if (users) chownSync(p.secretFile, users.platform.uid, users.platform.gid);
  const { identity, trustedOnFirstUse, commandKey } = await enroll({ serverUrl: server, token, fingerprint: flag(args, "--fingerprint"), version: AGENT_VERSION });
  const store = createIdentityStore({ dbPath: p.identityDb, secretPath: p.secretFile });
  store.save(identity);
  store.close();
  chmodSync(p.identityDb, 0o600);
  if (users) for (const f of [p.secretFile, p.identityDb]) chownSync(f, users.platform.uid, users.platform.gid);
  // Control verifies server commands with this public key; it and the agent id are not secret,
  // but only root may change them (Control runs as root).
  // Monitor reads them too, for `cis.scan` (agent/identity/command-key.ts has the layout).
  if (commandKey) {
    const k = commandKeyPaths(c.stateDir);
    mkdirSync(k.dir, { recursive: true, mode: 0o755 });
    for (const [file, text] of [[k.publicKey, commandKey], [k.agentId, String(identity.agentId)]] as const) {
      writeFileSync(file, text + "\n", { mode: 0o644 });
      chmodSync(file, 0o644);
    }
  }
  console.log(JSON.stringify({ enrolled: true, agentId: identity.agentId, server: identity.serverUrl, fingerprint: identity.fingerprint }));
  if (trustedOnFirstUse) console.error(`warning: no --fingerprint given; pinned the certificate presented now (${identity.fingerprint}). Compare it with the server's.`);
  return 0;
}

async function cmdRun(c: AgentConfig): Promise<number> {
  const drop = isRoot() && c.dropPrivileges;
  prepareLayout(c, drop ? ensureUsers() : undefined);
  const p = agentPaths(c);
  const base = selfArgv();
  const writeStates = (states: ProcessState[]) => {
    try {
      writeFileSync(p.supervisorFile + ".tmp", JSON.stringify({ pid: process.pid, updatedAt: Date.now(), processes: states }, null, 2), { mode: 0o644 });
      renameSync(p.supervisorFile + ".tmp", p.supervisorFile);
    } catch (e) {
      console.error(`supervisor: cannot write ${p.supervisorFile}: ${e instanceof Error ? e.message : e}`);
    }
  };
  // Monitor starts through setpriv, already as its user with read access to every file
  // (CAP_DAC_READ_SEARCH) and nothing more; the others drop root themselves.
  const hidden = [p.platformDir, p.collectorDir, commandKeyPaths(c.stateDir).snapshots];
  const launch = drop ? readOnlyLaunch(USERS.monitor, readGroupsOf("monitor"), hidden, [...base, "internal", "monitor"]) : undefined;
  const monitorArgv = launch && "argv" in launch ? launch.argv : undefined;
  if (launch && "error" in launch) console.error(`supervisor: Monitor's read-only start is not possible here: ${launch.error}; Monitor runs as its user without read access to root-only files (/etc/shadow, /root/.ssh, /etc/sudoers) and reports them as unreadable`);
  const sup = createSupervisor({
    // JSC reads BUN_JSC_* at start-up, so the JIT is turned off here, per child
    specs: ROLES.map((name) => {
      const env: Record<string, string> = c.jitRoles.includes(name) ? {} : { BUN_JSC_useJIT: "0" };
      return name === "monitor" && monitorArgv
        ? { name, argv: monitorArgv, env: { ...env, [LAUNCHED_DROPPED]: "1" } }
        : { name, argv: [...base, "internal", name], env };
    }),
    onChange: writeStates,
    log: (m) => console.error(`supervisor: ${m}`),
  });
  sup.start();
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGTERM", stop);
    process.once("SIGINT", stop);
  });
  await sup.stop();
  return 0;
}

function cmdStatus(c: AgentConfig): number {
  const p = agentPaths(c);
  const read = (f: string) => {
    try {
      return JSON.parse(readFileSync(f, "utf8"));
    } catch (e) {
      return { error: `${f}: ${(e as NodeJS.ErrnoException).code ?? e}` };
    }
  };
  const ship = read(p.statusFile);
  const sup = read(p.supervisorFile);
  const out = {
    connection: ship.state ?? "unknown",
    transport: ship.transport ?? null,
    agentId: ship.agentId ?? null,
    spool: ship.spool ?? null,
    lastAck: ship.lastAckMs ? new Date(ship.lastAckMs).toISOString() : null,
    lastError: ship.lastError ?? null,
    lastReconnectMs: ship.lastReconnectMs ?? null,
    http3: ship.h3 ?? null,
    lastHandshakeMs: ship.lastHandshakeMs ?? null,
    lastHandshakeResumed: ship.lastHandshakeResumed ?? null,
    session: ship.session ?? null,
    sessionsOpened: ship.sessionsOpened ?? null,
    unknownSessionRejects: ship.unknownSessionRejects ?? null,
    sealedFrames: ship.sealedFrames ?? null,
    statusAge: ship.updatedAt ? Math.round((Date.now() - ship.updatedAt) / 1000) : null,
    processes: sup.processes ?? sup,
  };
  console.log(JSON.stringify(out, null, 2));
  return ship.state === "connected" ? 0 : 1;
}

async function cmdInternal(c: AgentConfig, role: string | undefined): Promise<number> {
  if (!role || !(ROLES as readonly string[]).includes(role)) {
    console.error(`internal needs one of ${ROLES.join(", ")}`);
    return 2;
  }
  const r = role as Role;
  process.title = `servermind-agent ${r}`;
  const user = ROLE_USER[r];
  if (user && process.env[LAUNCHED_DROPPED] === "1") verifyDropped(user, r === "monitor" ? 1n << CAP_DAC_READ_SEARCH : 0n);
  else if (user && isRoot() && c.dropPrivileges) dropPrivileges(r, user);
  const parent = process.ppid;
  const stop = await (await RUNNERS[r]())(c);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", () => resolve());
    process.once("SIGINT", () => resolve());
    // an orphan (the supervisor was killed) stops itself rather than run unsupervised
    setInterval(() => {
      if (process.ppid !== parent) resolve();
    }, 1000);
  });
  await Promise.race([stop(), Bun.sleep(5000)]);
  return 0;
}

export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === "version" || cmd === "--version") {
    console.log(`servermind-agent ${AGENT_VERSION} (bun ${Bun.version}, ${process.platform}-${process.arch})`);
    return 0;
  }
  let c: AgentConfig;
  try {
    c = loadAgentConfig();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    return 78;
  }
  try {
    switch (cmd) {
      case "enroll":
        return await cmdEnroll(c, rest);
      case "run":
        return await cmdRun(c);
      case "status":
        return cmdStatus(c);
      case "internal":
        return await cmdInternal(c, rest[0]);
      default:
        console.error(USAGE);
        return 2;
    }
  } catch (e) {
    // messages only: a stack could quote a token from argv
    console.error(`${cmd}: ${e instanceof IdentityError ? "identity: " : ""}${e instanceof Error ? e.message : e}`);
    return 1;
  }
}

if (import.meta.main) {
  process.on("unhandledRejection", (e) => {
    console.error(`unhandled rejection: ${e instanceof Error ? e.message : e}`);
    process.exit(1);
  });
  // no top-level await: --bytecode builds compile the entry as CommonJS
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
