/**
 * The MCP tools (issue #14): the fleet, hosts, metrics, logs, security posture, services and
 * files, for an AI client holding an API token marked as an AI client. Each call runs under what
 * the token may do at that moment (its owner's current roles cut to the token, src/auth/
 * api-tokens.ts tokenGrants): the tool's permission, and the host scope of that permission — a
 * host outside it is "not found", as a missing one. The same model functions as the JSON API.
 *
 * Read-only tools run at once. Acting tools (service_action, write_file) need ai.assistant.act
 * plus the operation's own permission, on a host within the scope of both. A dangerous
 * operation is never run here: it is queued for a person to approve (src/mcp/approvals.ts) and the tool answers "queued for approval, id N".
 * Dangerous are every file write, and stopping or disabling ssh/sshd or the agent's own unit
 * (as in the console, src/ingest/frame/service-commands.ts isDangerousOp); an ordinary service
 * operation on one host runs at once, as the token's owner, and answers with its result.
 * Every call is audited as `ai_operation` (client name and version, tool, arguments with file
 * contents replaced by size and SHA-256, outcome).
 */
import { z } from "zod";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { Sql } from "postgres";
import type { HostScope } from "../auth/host-scope.ts";
import type { Grants } from "../auth/roles.ts";
import type { User } from "../auth/users.ts";
import type { CommandDeps } from "../security/issue.ts";
import { principalScope } from "./scope.ts";
import { audit, type AuditEvent } from "../audit/audit.ts";
import {
  fleetOverview, findHost, hostLogs, hostSeriesRange, latestMetrics, seriesNames, type ScopedHost,
} from "../store/postgres/queries-console.ts";
import { postgresRangeStore, type RangeStore } from "../store/range.ts";
import { latestScores, scoreHost } from "../security/score.ts";
import { listViolations } from "../security/posture.ts";
import {
  groupHosts, isDangerousOp, listServices, MAX_GROUP_HOSTS, normalizeUnit, operationProgress, serviceAction, serviceStatus, ServiceRequestError, SERVICE_OPS, type ServiceOpsDeps,
} from "../operations/services.ts";
import { cleanPath, fileCommand, FILE_PERMISSION, MAX_WRITE, sha256, userPolicy } from "../operations/files.ts";
import { queueApproval } from "./approvals.ts";

export const USE_PERMISSION = "ai.assistant.use";
export const ACT_PERMISSION = "ai.assistant.act";

/** The permission each service op needs (as the console's routes, src/web/services/routes.ts). */
const OP_PERMISSION: Record<string, string> = {
  start: "services.start", stop: "services.stop", restart: "services.restart", reload: "services.restart", enable: "services.enable", disable: "services.enable",
};

export interface McpDeps {
  sql: Sql;
  ranges?: RangeStore;
  /** Signing and delivery of commands to agents (absent: tools that need an agent refuse). */
  security?: Pick<CommandDeps, "commandKey" | "dispatch" | "now">;
}

/** An API token's principal (src/web/bearer.ts resolves it): the owner, what the token may do now. */
export interface TokenCaller {
  user: User;
  grants: Grants;
  token: { id: number; name: string; aiClient: boolean; clientName: string };
}

/** Who is calling, for one HTTP request: the token's principal and the client from initialize. */
export interface CallContext {
  principal: TokenCaller;
  client: { name: string; version: string };
  ip: string;
  userAgent: string;
}

/** A refusal the tool reports as a tool error (isError), with this message. */
class ToolRefusal extends Error {}

const text = (v: unknown): CallToolResult => ({ content: [{ type: "text", text: typeof v === "string" ? v : JSON.stringify(v, null, 1) }] });

/** Arguments as audited: a file's content becomes its size and SHA-256. */
export function auditedArgs(args: Record<string, unknown>): Record<string, unknown> {
  const out = { ...args };
  if (typeof out.content === "string") {
    const b = Buffer.from(out.content, "utf8");
    out.content = { bytes: b.length, sha256: sha256(b) };
  }
  return out;
}

export function registerTools(server: McpServer, deps: McpDeps, context: (extra: unknown) => CallContext): void {
  const { sql } = deps;

  function scope(c: CallContext, permission: string): HostScope {
    if (!c.principal.grants.permissions.has(permission)) throw new ToolRefusal(`this needs the ${permission} permission, which this token does not have`);
    return principalScope(c.principal.grants, permission);
  }
  async function host(c: CallContext, permission: string, id: number) {
    const h = await findHost(sql, scope(c, permission), id);
    if (!h) throw new ToolRefusal(`no such host: ${id}`);
    return h;
  }
  /**
   * A host an acting tool may act on: within the scope of ai.assistant.act AND of the
   * operation's permission (outside either: "not found", as a missing host).
   */
  async function actOn(c: CallContext, permission: string, id: number) {
    const act = scope(c, ACT_PERMISSION);
    const h = await host(c, permission, id);
    if (!act.covers(h.tags)) throw new ToolRefusal(`no such host: ${id}`);
    return h;
  }
  /** The audit actor: the AI client, on behalf of the token's owner. */
  const actor = (c: CallContext) => ({ type: "ai" as const, id: `token:${c.principal.token.id}`, name: c.client.name || c.principal.token.clientName, onBehalfOf: c.principal.user.username });
  /** Who commands to agents are recorded as: the owner, through the AI client. */
  const who = (c: CallContext) => ({ type: "user" as const, id: c.principal.user.id, name: `${c.principal.user.username} via ${c.client.name || c.principal.token.clientName || "AI client"}` });
  function auditAi(c: CallContext, e: Omit<AuditEvent, "actor" | "ip" | "userAgent">) {
    return audit(sql, { actor: actor(c), ip: c.ip, userAgent: c.userAgent, ...e });
  }
  function opsDeps(c: CallContext): ServiceOpsDeps {
    if (!deps.security) throw new ToolRefusal("no command channel to agents is set up on this server");
    return {
      sql, commandKey: deps.security.commandKey, dispatch: deps.security.dispatch, now: deps.security.now,
      audit: (e) => auditAi(c, { category: "service_operation", action: e.action, target: e.target, success: e.success, details: { ...e.details, token: { id: c.principal.token.id, name: c.principal.token.name } } }).then(() => {}),
    };
  }

  /** Registers one tool: ai.assistant.use first, then the handler; every call audited. */
  function tool<S extends z.ZodRawShape>(name: string, description: string, shape: S, run: (c: CallContext, a: z.infer<z.ZodObject<S>>) => Promise<{ result: unknown; host?: ScopedHost; outcome?: string }>, readOnly: boolean) {
    server.registerTool(name, { description, inputSchema: shape, annotations: { readOnlyHint: readOnly, destructiveHint: !readOnly } }, (async (args: Record<string, unknown>, extra: unknown) => {
      const c = context(extra);
      const base = { client: c.client, tool: name, arguments: auditedArgs(args), token: { id: c.principal.token.id, name: c.principal.token.name } };
      try {
        if (!c.principal.grants.permissions.has(USE_PERMISSION)) throw new ToolRefusal(`this needs the ${USE_PERMISSION} permission, which this token does not have`);
        const r = await run(c, args as z.infer<z.ZodObject<S>>);
        await auditAi(c, { category: "ai_operation", action: `mcp.${name}`, target: r.host ? `agent:${r.host.id}` : "", success: true, details: { ...base, outcome: r.outcome ?? "ok" } });
        return text(r.result);
      } catch (e) {
        const refusal = e instanceof ToolRefusal || e instanceof ServiceRequestError;
        const message = refusal ? (e as Error).message : "the server could not complete this call; it has been logged";
        if (!refusal) console.error(`mcp ${name} failed: ${e instanceof Error ? e.stack : e}`);
        await auditAi(c, { category: "ai_operation", action: `mcp.${name}`, target: "", success: false, details: { ...base, outcome: refusal ? "refused" : "error", error: message } });
        return { ...text(message), isError: true };
      }
    }) as never);
  }

  const hostId = z.number().int().positive().describe("The host's (agent's) id, from list_hosts");
  const reason = z.string().min(3).max(1000).describe("Why you want this done: shown to the person who approves or rejects the request");

  tool("list_hosts", "The hosts this token may see, with state (online/offline/revoked), tags, OS and latest CPU, memory and root-disk use (percent). Needs hosts.view.", {
    search: z.string().max(100).optional().describe("Search in hostname, tags (exact) and OS"),
    limit: z.number().int().min(1).max(1000).optional().describe("At most this many hosts (default 250)"),
  }, async (c, a) => {
    const rows = await fleetOverview(sql, scope(c, "hosts.view"), { search: (a.search ?? "").trim(), sort: "hostname", desc: false, limit: a.limit ?? 250, offset: 0 });
    return { result: { hosts: rows.map((r) => ({ id: r.id, hostname: r.hostname, tags: r.tags, state: r.revoked_at ? "revoked" : r.online ? "online" : "offline", last_seen: r.last_seen, cpu_pct: r.cpu, mem_pct: r.mem, disk_root_pct: r.disk, os: r.os })) } };
  }, true);

  tool("get_host", "One host: hostname, tags, OS, architecture, agent version, state and last contact. Needs hosts.view.", { host_id: hostId }, async (c, a) => {
    const h = await host(c, "hosts.view", a.host_id);
    return { host: h, result: { id: h.id, hostname: h.hostname, tags: h.tags, os: h.os, arch: h.arch, agent_version: h.agent_version, state: h.revoked_at ? "revoked" : h.online ? "online" : "offline", last_seen: h.last_seen, enrolled_at: h.enrolled_at } };
  }, true);

  tool("host_metrics", "A host's metrics. Without `names`: the series names it reports and the latest value of each. With `names`: those series over a time range, averaged into at most `points` buckets (with min and max). Needs metrics.view.", {
    host_id: hostId,
    names: z.array(z.string().min(1).max(200)).max(20).optional().describe("Series names for a range (see the names returned without this)"),
    minutes: z.number().int().min(1).max(31 * 24 * 60).optional().describe("The range: the last this many minutes (default 60)"),
    points: z.number().int().min(1).max(2000).optional().describe("At most this many buckets (default 120)"),
  }, async (c, a) => {
    const h = await host(c, "metrics.view", a.host_id);
    if (!a.names?.length) {
      const [names, latest] = await Promise.all([seriesNames(sql, h), latestMetrics(sql, h)]);
      return { host: h, result: { host: h.id, names, latest: { ts: latest?.ts ?? null, values: latest?.values ?? {} } } };
    }
    const to = Date.now();
    const from = to - (a.minutes ?? 60) * 60_000;
    const series = await hostSeriesRange(deps.ranges ?? postgresRangeStore(sql), h, a.names, new Date(from), new Date(to), a.points ?? 120);
    return { host: h, result: { host: h.id, from, to, series } };
  }, true);

  tool("host_logs", "A host's log lines, newest first. Needs logs.view.", {
    host_id: hostId,
    search: z.string().max(200).optional().describe("Text the message contains (case-insensitive)"),
    severity: z.number().int().min(0).max(7).optional().describe("Only lines at this syslog severity or more severe (0 emerg .. 7 debug)"),
    minutes: z.number().int().min(1).max(31 * 24 * 60).optional().describe("Only the last this many minutes (default 1440)"),
    limit: z.number().int().min(1).max(1000).optional().describe("At most this many lines (default 100)"),
  }, async (c, a) => {
    const h = await host(c, "logs.view", a.host_id);
    const logs = await hostLogs(sql, h, { search: (a.search ?? "").trim(), minSeverity: a.severity, since: new Date(Date.now() - (a.minutes ?? 1440) * 60_000), limit: a.limit ?? 100 });
    return { host: h, result: { host: h.id, logs } };
  }, true);

  tool("security_posture", "Security posture: the latest security score of each host (or of one host) and the open CIS benchmark violations. Needs compliance.view.", {
    host_id: hostId.optional().describe("One host; absent: every host this token may see"),
    limit: z.number().int().min(1).max(1000).optional().describe("At most this many violations (default 100)"),
  }, async (c, a) => {
    const sc = scope(c, "compliance.view");
    if (a.host_id !== undefined) {
      const h = await host(c, "compliance.view", a.host_id);
      const [score, violations] = await Promise.all([scoreHost(sql, h, deps.security?.now?.()), listViolations(sql, sc, { agentId: h.id, open: true, limit: a.limit ?? 100 })]);
      return { host: h, result: { host: h.id, score, violations } };
    }
    const [scores, violations] = await Promise.all([latestScores(sql, sc), listViolations(sql, sc, { open: true, limit: a.limit ?? 100 })]);
    return { result: { scores: scores.map(({ breakdown, ...r }) => r), violations } };
  }, true);

  tool("list_services", "A host's service units, live from its service manager (systemd): unit, load, active, sub, description. Needs services.view.", {
    host_id: hostId,
    state: z.enum(["all", "active", "inactive", "failed"]).optional().describe("Only units in this active state (default all)"),
  }, async (c, a) => {
    const h = await host(c, "services.view", a.host_id);
    const r = await listServices(opsDeps(c), who(c), h);
    if (!r.ok) throw new ToolRefusal(`the agent could not list the units: ${r.error}`);
    const units = (Array.isArray(r.result.units) ? (r.result.units as Array<Record<string, string>>) : []).filter((u) => !a.state || a.state === "all" || u.active === a.state);
    return { host: h, result: { host: h.id, manager: r.result.manager ?? null, units: units.slice(0, 1000) } };
  }, true);

  tool("service_status", "One unit's status (active, sub, enabled, main PID, since) and its recent journal lines. Needs services.view.", {
    host_id: hostId,
    unit: z.string().min(1).max(256).describe("Unit name, e.g. nginx.service (a bare name means .service)"),
    lines: z.number().int().min(0).max(200).optional().describe("Journal lines (default 20)"),
  }, async (c, a) => {
    const h = await host(c, "services.view", a.host_id);
    const r = await serviceStatus(opsDeps(c), who(c), h, a.unit, a.lines ?? 20);
    if (!r.ok) throw new ToolRefusal(`the agent could not read the status: ${r.error}`);
    return { host: h, result: { host: h.id, manager: r.result.manager ?? null, status: r.result.status ?? null } };
  }, true);

  tool("service_action", "Start, stop, restart, reload, enable or disable a unit on a host. An ordinary operation runs at once and answers with its result and the output it printed (systemctl, the unit's journal while it ran, its state changes). A dangerous one (stopping or disabling ssh/sshd or the ServerMind agent) is never run directly: it is queued for a person to approve in the console, and this answers with the request's id. Needs ai.assistant.act and the operation's permission (services.start / .stop / .restart / .enable).", {
    host_id: hostId,
    unit: z.string().min(1).max(256).describe("Unit name, e.g. nginx.service"),
    op: z.enum(SERVICE_OPS).describe("The operation"),
    reason,
  }, async (c, a) => {
    const permission = OP_PERMISSION[a.op]!;
    const h = await actOn(c, permission, a.host_id);
    const unit = normalizeUnit(a.unit);
    if (!unit) throw new ToolRefusal("unit must be a unit name of letters, digits and :_.@- (not starting with -), e.g. nginx.service");
    if (!isDangerousOp(unit, a.op)) {
      // an ordinary operation on one host: run now, as the console would for the token's owner
      const r = await serviceAction(opsDeps(c), who(c), h, unit, a.op);
      const p = await operationProgress(sql, scope(c, permission), r.operation);
      return {
        host: h, outcome: r.ok ? "ok" : "failed",
        result: {
          ran: true, operation: r.operation, host: r.host, unit: r.unit, op: r.op, ok: r.ok, error: r.error,
          exitCode: r.result.exitCode ?? null, timedOut: r.result.timedOut === true, after: r.result.after ?? null,
          output: String(r.result.output ?? ""), lines: (p?.lines ?? []).slice(-200).map((l) => `${new Date(l.ts).toISOString()} ${l.src}: ${l.text}`),
        },
      };
    }
    const args = { host_id: h.id, unit, op: a.op };
    const id = await queueApproval(sql, { tool: "service_action", args, hostId: h.id, permission, reason: a.reason, tokenId: c.principal.token.id, userId: c.principal.user.id, clientName: c.client.name, clientVersion: c.client.version });
    return { host: h, outcome: `queued:${id}`, result: `queued for approval, id ${id}: ${a.op} ${unit} on ${h.hostname} (a dangerous operation). A person must approve it in the console (/ai/approvals) before it runs.` };
  }, false);

  tool("service_action_group", "Ask to start, stop, restart, reload, enable or disable a unit on every host of a tag (a group). An operation on more than one host is dangerous: it is never run directly but queued for a person to approve in the console, and this answers with the request's id. Only hosts within this token's scope are included, and only those listed in the request are ever reached. Needs ai.assistant.act and the operation's permission.", {
    group: z.string().min(1).max(200).describe("A host tag, e.g. group:web (or * for every host in scope)"),
    unit: z.string().min(1).max(256).describe("Unit name, e.g. nginx.service"),
    op: z.enum(SERVICE_OPS).describe("The operation"),
    reason,
  }, async (c, a) => {
    const act = scope(c, ACT_PERMISSION);
    const permission = OP_PERMISSION[a.op]!;
    const hosts = (await groupHosts(sql, scope(c, permission), a.group)).filter((h) => act.covers(h.tags));
    if (!hosts.length) throw new ToolRefusal(`no host of ${a.group} is within this token's scope`);
    if (hosts.length > MAX_GROUP_HOSTS) throw new ToolRefusal(`a group run reaches at most ${MAX_GROUP_HOSTS} hosts; this group has ${hosts.length}`);
    const unit = normalizeUnit(a.unit);
    if (!unit) throw new ToolRefusal("unit must be a unit name of letters, digits and :_.@- (not starting with -), e.g. nginx.service");
    const args = { group: a.group.trim(), unit, op: a.op, hosts: hosts.map((h) => h.id) };
    // the row names the group's first host (the approval page shows requests by host scope)
    const id = await queueApproval(sql, { tool: "service_action_group", args, hostId: hosts[0]!.id, permission, reason: a.reason, tokenId: c.principal.token.id, userId: c.principal.user.id, clientName: c.client.name, clientVersion: c.client.version });
    return { host: hosts[0], outcome: `queued:${id}`, result: `queued for approval, id ${id}: ${a.op} ${unit} on ${a.group} (${hosts.length} host${hosts.length === 1 ? "" : "s"}: ${hosts.slice(0, 20).map((h) => h.hostname).join(", ")}${hosts.length > 20 ? ", ..." : ""}). A person must approve it in the console (/ai/approvals) before it runs.` };
  }, false);

  /** One file command as the token's owner, under the owner's path policy for `op`. */
  async function file(c: CallContext, h: ScopedHost, op: "list" | "read", args: Record<string, unknown>) {
    if (!deps.security) throw new ToolRefusal("no command channel to agents is set up on this server");
    const policy = await userPolicy(sql, c.principal.user.id, FILE_PERMISSION[op], h);
    const done = await fileCommand({ sql, commandKey: deps.security.commandKey, dispatch: deps.security.dispatch, now: deps.security.now }, who(c), h, op, args, policy);
    if (!done.result.ok) throw new ToolRefusal(`${done.result.code ?? "failed"}: ${done.result.error ?? "failed"}`);
    return done.result;
  }
  const pathArg = z.string().min(1).max(4096).describe("An absolute path");
  const checkedPath = (p: string) => {
    const c = cleanPath(p);
    if (!c) throw new ToolRefusal("path must be an absolute path without . or .. components");
    return c;
  };

  tool("list_files", "The entries of a directory on a host (name, type, size, mode, owner, modification time), within the token owner's file policy. Needs files.view.", { host_id: hostId, path: pathArg }, async (c, a) => {
    const h = await host(c, FILE_PERMISSION.list, a.host_id);
    const r = await file(c, h, "list", { path: checkedPath(a.path) });
    return { host: h, result: r };
  }, true);

  tool("read_file", "A file's content on a host (text as UTF-8, at most 512 KiB from `offset`), its size, mode and SHA-256 (pass the SHA-256 to write_file as expected_sha256). Needs files.read.", {
    host_id: hostId, path: pathArg,
    offset: z.number().int().min(0).optional().describe("Byte offset (default 0)"),
  }, async (c, a) => {
    const h = await host(c, FILE_PERMISSION.read, a.host_id);
    const path = checkedPath(a.path);
    const r = await file(c, h, "read", { path, offset: a.offset ?? 0 });
    const bytes = Buffer.from(String(r.content ?? ""), "base64");
    await auditAi(c, { category: "file_operation", action: "file.read", target: `agent:${h.id}:${path}`, success: true, details: { host: h.hostname, agentId: h.id, path, after: r.sha256 ?? null, token: { id: c.principal.token.id, name: c.principal.token.name } } });
    return { host: h, result: { path: r.path, size: r.size, offset: r.offset, length: r.length, eof: r.eof, sha256: r.sha256 ?? null, mode: r.mode, content: bytes.toString("utf8") } };
  }, true);

  tool("write_file", "Ask to write a text file on a host. Never run directly: the request is queued for a person to approve in the console, and this answers with its id. expected_sha256 (from read_file, or \"absent\" for a new file) makes the write refused if the file changed meanwhile. Needs ai.assistant.act and files.write.", {
    host_id: hostId, path: pathArg,
    content: z.string().max(MAX_WRITE).describe("The new content (UTF-8 text)"),
    expected_sha256: z.string().regex(/^([0-9a-f]{64}|absent)$/).describe("SHA-256 of the file as you last read it (read_file), or \"absent\" to create a file that must not exist yet; the write is refused if the file is not in that state when it runs"),
    reason,
  }, async (c, a) => {
    const h = await actOn(c, FILE_PERMISSION.write, a.host_id);
    const path = checkedPath(a.path);
    const bytes = Buffer.from(a.content, "utf8");
    const args = { host_id: h.id, path, content: { bytes: bytes.length, sha256: sha256(bytes) }, expected_sha256: a.expected_sha256 };
    const id = await queueApproval(sql, { tool: "write_file", args, payload: bytes, hostId: h.id, permission: FILE_PERMISSION.write, reason: a.reason, tokenId: c.principal.token.id, userId: c.principal.user.id, clientName: c.client.name, clientVersion: c.client.version });
    return { host: h, outcome: `queued:${id}`, result: `queued for approval, id ${id}: write ${bytes.length} bytes to ${h.hostname}:${path}. A person must approve it in the console (/ai/approvals) before it runs.` };
  }, false);
}
