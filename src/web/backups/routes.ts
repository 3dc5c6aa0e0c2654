/**
 * Backups in the console (issue #15): destinations, jobs, their run history, "Run now", restore
 * with progress, and a destination test that runs FROM a host (the destination is reached by the
 * host's agent, never by the server). Each route has its own permission: backups.view (pages,
 * history), backups.manage (destinations and jobs, destination test), backups.run (run now),
 * backups.restore (restore; over the original location it is dangerous: typed confirmation and
 * re-authentication). Routes that act on a host name it as `:id` (hostData "host": the guard
 * finds it within the permission's scope or answers 404). No SQL here: src/backups/ owns the
 * tables and issues the signed commands. No page or answer ever carries a secret: destination
 * credentials show as "set", the repository password never leaves the server but inside the
 * signed command, and a new repository's recovery key is shown once and then deleted.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can, scopeFor } from "../route.ts";
import { json, type Pages } from "../respond.ts";
import { AFTER_PROBLEM, afterParam } from "../api/routes.ts";
import { auditRequest } from "../audit-request.ts";
import { findHost, listHosts } from "../../store/postgres/queries-console.ts";
import { readCommandOutput } from "../../cluster/command-output.ts";
import type { Requester } from "../../security/issue.ts";
import {
  BackupRequestError, checkSchedule, deleteDestination, deleteJob, DESTINATION_TYPES, getDestination, getJob, getRun, jobCovers, jobSnapshots, jobVisible, listDestinations,
  listJobs, listRuns, saveDestination, saveJob, SECRET_FIELDS, takeRecoveryKey, type JobRow, type RunRow,
} from "../../backups/store.ts";
import { browseSnapshot, startBackup, startRestore, testDestination, type BackupDeps } from "../../backups/runner.ts";


export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(v < 10 ? 2 : 1) : v} ${u[i]}`;
}

/** bytes read per byte of new data: how much deduplication saved (null: nothing new, or unknown). */
export function dedupRatio(read: number | null, fresh: number | null): string {
  if (read === null || fresh === null) return "—";
  if (fresh === 0) return read > 0 ? "all deduplicated" : "—";
  return `${(read / fresh).toFixed(1)}×`;
}

const stamp = (d: Date | null) => (d ? d.toISOString().replace("T", " ").slice(0, 19) : "");
const lines = (v: string | null) => (v ?? "").split("\n").map((s) => s.trim()).filter(Boolean);
const listField = (form: URLSearchParams, name: string) => form.getAll(name).flatMap((v) => lines(v));

function runJson(r: RunRow) {
  return {
    id: r.id, job: { id: r.job_id, name: r.job }, host: { id: r.agent_id, hostname: r.hostname }, kind: r.kind, trigger: r.trigger, status: r.status, finished: r.status !== "running",
    startedAt: r.started_at.toISOString(), finishedAt: r.finished_at?.toISOString() ?? null, requestedBy: r.requested_by, snapshot: r.snapshot, files: r.files,
    bytesRead: r.bytes_read, newBytes: r.new_bytes, storedBytes: r.stored_bytes, repoBytes: r.repo_bytes, durationMs: r.duration_ms,
    dedupRatio: r.bytes_read !== null && r.new_bytes ? r.bytes_read / r.new_bytes : null, error: r.error, details: r.details,
  };
}

function runModel(r: RunRow) {
  return {
    ...runJson(r), started: stamp(r.started_at), finishedText: stamp(r.finished_at), ok: r.status === "ok", running: r.status === "running", isRestore: r.kind === "restore",
    readText: bytes(r.bytes_read), newText: bytes(r.new_bytes), repoText: bytes(r.repo_bytes), dedup: dedupRatio(r.bytes_read, r.new_bytes),
    durationText: r.duration_ms === null ? "—" : `${(r.duration_ms / 1000).toFixed(1)} s`,
  };
}

function jobJson(j: JobRow) {
  return {
    id: j.id, name: j.name, enabled: j.enabled, host: j.agent_id === null ? null : { id: j.agent_id, hostname: j.hostname }, hostTag: j.host_tag, paths: j.paths, excludes: j.excludes,
    dump: j.dump ? { ...j.dump, password: j.dumpPasswordSet ? "set" : "" } : null, schedule: j.schedule, keep: j.keep, destination: { id: j.destination_id, name: j.destination },
    nextRunAt: j.next_run_at?.toISOString() ?? null,
  };
}

const scheduleText = (j: JobRow) => (j.schedule.kind === "interval" ? `every ${j.schedule.minutes} min` : j.schedule.kind === "daily" ? `daily at ${j.schedule.at} UTC` : "manual");

export function backupRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;
  const box = s.secrets;
  const deps = (req: ConsoleRequest): BackupDeps | null =>
    s.security
      ? {
          sql, box, commandKey: s.security.commandKey, dispatch: s.security.dispatch, now: s.security.now,
          audit: (e) => auditRequest(sql, req, "backup", e.action, e.target, e.success, e.details).then(() => {}),
        }
      : null;
  const who = (req: ConsoleRequest): Requester => ({ type: "user", id: req.user!.id, name: req.user!.username });
  const by = (req: ConsoleRequest) => `user:${req.user!.id} ${req.user!.username}`;
  const wantsJson = (req: ConsoleRequest) => !req.htmx.request;
  const fail = (req: ConsoleRequest, status: number, code: string, message: string) =>
    wantsJson(req) ? json({ error: { code, message } }, status) : pages.formErrors(req, [message], status);
  const noChannel = (req: ConsoleRequest) => fail(req, 503, "unavailable", "no command channel to agents is set up on this server");
  const bad = (req: ConsoleRequest, e: unknown) => {
    if (e instanceof BackupRequestError) return fail(req, 400, "bad_request", e.message);
    throw e;
  };
  const idParam = (v: string | undefined) => (v && /^\d{1,15}$/.test(v) ? Number(v) : 0);
  /** The job if the user may see it (else undefined: answered as missing). */
  const visibleJob = async (req: ConsoleRequest, id: number) => {
    const j = await getJob(sql, id);
    return j && jobVisible(j, req.scope) ? j : undefined;
  };

  const destModel = async () =>
    (await listDestinations(sql, box)).map((d) => ({
      id: d.id, name: d.name, type: d.type, settings: JSON.stringify(d.config), secretsSet: d.secretsSet, secretsText: d.secretsSet.length ? d.secretsSet.map((f) => `${f}: set`).join(", ") : "none",
    }));

  /** What a destination form posts: name, type, settings (JSON without secrets), one field per secret. */
  const destinationInput = (req: ConsoleRequest, id?: number) => {
    let config: unknown;
    try {
      config = JSON.parse(req.form.get("settings") || "{}");
    } catch {
      throw new BackupRequestError("settings must be a JSON object, e.g. {\"path\": \"/srv/backups\"}");
    }
    const secrets: Record<string, string> = {};
    for (const f of SECRET_FIELDS) {
      const v = req.form.get(f);
      if (v) secrets[f] = v;
    }
    return { id, name: req.form.get("name") ?? "", type: req.form.get("type") ?? "", config, secrets, clear: req.form.getAll("clear") };
  };

  const jobInput = (req: ConsoleRequest, id?: number) => {
    const f = req.form;
    const host = (f.get("host") ?? "").trim();
    const tag = (f.get("tag") ?? "").trim();
    const keep = (k: string, d: number) => (f.get(`keep_${k}`) === null || f.get(`keep_${k}`) === "" ? d : Number(f.get(`keep_${k}`)));
    return {
      id, name: f.get("name") ?? "", enabled: f.get("enabled") !== "false",
      agentId: host ? idParam(host) || -1 : null, hostTag: !host && tag ? tag : null,
      paths: listField(f, "paths"), excludes: listField(f, "excludes"),
      dump: f.get("dump_kind") ? { kind: f.get("dump_kind") ?? "", host: f.get("dump_host") ?? "", port: f.get("dump_port") ?? "", user: f.get("dump_user") ?? "", database: f.get("dump_database") ?? "" } : null,
      dumpPassword: f.get("dump_password") ?? "",
      schedule: checkSchedule(f.get("schedule") ?? "manual", f.get("every_minutes"), f.get("daily_at")),
      keep: { last: keep("last", 7), daily: keep("daily", 7), weekly: keep("weekly", 4), monthly: keep("monthly", 6) },
      destinationId: idParam(f.get("destination") ?? ""),
    };
  };

  /** Hosts of a job within a scope. */
  const jobHosts = async (req: ConsoleRequest, j: JobRow, permission: string) => (await listHosts(sql, scopeFor(req, permission))).filter((h) => jobCovers(j, h));

  const routes: ConsoleRoute[] = [
    {
      method: "GET", path: "/backups", access: "backups.view", hostData: "fleet",
      async handler(req) {
        const jobs = await listJobs(sql, req.scope);
        const hosts = can(req, "backups.manage") ? await listHosts(sql, req.scope) : [];
        return pages.page(req, "pages/backups", "Backups", {
          canManage: can(req, "backups.manage"), canRun: can(req, "backups.run"),
          destinations: await destModel(), types: DESTINATION_TYPES, secretFields: SECRET_FIELDS,
          jobs: jobs.map((j) => ({ ...jobJson(j), scope: j.host_tag ? `tag ${j.host_tag}` : j.hostname, scheduleText: scheduleText(j), pathsText: j.paths.join(", "), dumpText: j.dump ? `${j.dump.kind} ${j.dump.database}` : "" })),
          hosts: hosts.map((h) => ({ id: h.id, hostname: h.hostname })),
          tags: [...new Set(hosts.flatMap((h) => h.tags))].sort(),
          runs: (await listRuns(sql, req.scope, { limit: 30 })).map(runModel),
        });
      },
    },
    {
      method: "GET", path: "/backups/jobs/:job", access: "backups.view", hostData: "fleet",
      async handler(req) {
        const j = await visibleJob(req, idParam(req.params.job));
        if (!j) return pages.notFound(req, "backup job");
        const hosts = await listHosts(sql, req.scope);
        const covered = hosts.filter((h) => jobCovers(j, h));
        return pages.page(req, "pages/backup-job", `Backup job ${j.name}`, {
          job: { ...jobJson(j), scheduleText: scheduleText(j), pathsText: j.paths.join("\n"), excludesText: j.excludes.join("\n") },
          canManage: can(req, "backups.manage"),
          hosts: covered.map((h) => ({ id: h.id, hostname: h.hostname, canRun: can(req, "backups.run", h), canRestore: can(req, "backups.restore", h) })),
          allHosts: hosts.map((h) => ({ id: h.id, hostname: h.hostname, selected: h.id === j.agent_id })),
          destinations: (await listDestinations(sql, box)).map((d) => ({ id: d.id, name: d.name, selected: d.id === j.destination_id })),
          runs: (await listRuns(sql, req.scope, { job: j.id, limit: 100 })).map(runModel),
        });
      },
    },
    {
      method: "GET", path: "/backups/runs/:run", access: "backups.view", hostData: "fleet",
      async handler(req) {
        const r = await getRun(sql, req.scope, idParam(req.params.run));
        if (!r) return pages.notFound(req, "backup run");
        return pages.page(req, "pages/backup-run", `Backup run ${r.id}`, { run: await liveModel(req, r, -1) });
      },
    },
    {
      method: "GET", path: "/api/backups/runs/:run", access: "backups.view", hostData: "fleet",
      doc: {
        summary: "One backup or restore run: its progress lines so far and, once finished, its statistics",
        params: { run: "run id" },
        query: { after: "only output chunks after this one (the `last` of the previous answer; default -1)" },
        responses: { "200": "{id, job, host, kind, status: running|ok|failed, finished, snapshot, files, bytesRead, newBytes, storedBytes, repoBytes, durationMs, dedupRatio, error, lines, last, recoveryKey?}", "404": "no such run on a host within your scope" },
      },
      async handler(req) {
        const r = await getRun(sql, req.scope, idParam(req.params.run));
        if (!r) return fail(req, 404, "not_found", "no such run");
        const after = afterParam(req.query);
        if (after === null) return fail(req, 400, "bad_request", AFTER_PROBLEM);
        const m = await liveModel(req, r, after);
        if (!wantsJson(req)) return pages.partial("partials/backup-live", m);
        const { lines: l, last, recoveryKey } = m;
        return json({ ...runJson(r), lines: l.map(({ ts, src, text }) => ({ ts, src, text })), last, ...(recoveryKey ? { recoveryKey } : {}) });
      },
    },
    {
      method: "GET", path: "/api/backups/runs", access: "backups.view", hostData: "fleet",
      doc: { summary: "Backup and restore history (hosts within your scope), newest first", query: { job: "only this job's runs", limit: "1-500 (default 50)" }, responses: { "200": "{runs: [run]}" } },
      async handler(req) {
        const runs = await listRuns(sql, req.scope, { job: idParam(req.query.get("job") ?? "") || undefined, limit: Number(req.query.get("limit") ?? 50) || 50 });
        return json({ runs: runs.map(runJson) });
      },
    },
    {
      method: "GET", path: "/api/backups/jobs", access: "backups.view", hostData: "fleet",
      doc: { summary: "Backup jobs (of hosts and tags within your scope)", responses: { "200": "{jobs: [{id, name, host, hostTag, paths, excludes, dump, schedule, keep, destination}]} (secrets show as \"set\")" } },
      async handler(req) {
        return json({ jobs: (await listJobs(sql, req.scope)).map(jobJson) });
      },
    },
    {
      method: "GET", path: "/api/backups/destinations", access: "backups.view",
      doc: { summary: "Backup destinations; their secrets show only as set", responses: { "200": "{destinations: [{id, name, type, config, secrets: {field: \"set\"}}]}" } },
      async handler() {
        const ds = await listDestinations(sql, box);
        return json({ destinations: ds.map((d) => ({ id: d.id, name: d.name, type: d.type, config: d.config, secrets: Object.fromEntries(d.secretsSet.map((f) => [f, "set"])) })) });
      },
    },
    {
      method: "POST", path: "/api/backups/destinations", access: "backups.manage",
      doc: {
        summary: "Create a backup destination, or change one (with id)",
        body: { id: "to change an existing destination", name: "name", type: DESTINATION_TYPES.join(" | "), settings: "JSON object of the non-secret settings (docs/backup-format.md#destinations)", password: "and privateKey, passphrase, secretAccessKey, sessionToken, accountKey, sasToken: secrets; empty keeps the stored one", clear: "a secret field to remove (repeatable)" },
        responses: { "200": "{id}", "400": "invalid settings" },
      },
      async handler(req) {
        const id = idParam(req.form.get("id") ?? "") || undefined;
        try {
          const input = destinationInput(req, id);
          const saved = await saveDestination(sql, box, by(req), input);
          await auditRequest(sql, req, "backup", id ? "backup.destination.update" : "backup.destination.create", `backup_destination:${saved}`, true,
            { name: input.name, type: input.type, secretsChanged: Object.keys(input.secrets), secretsCleared: input.clear });
          if (wantsJson(req)) return json({ id: saved });
          return new Response(null, { status: 204, headers: { "hx-redirect": "/backups" } });
        } catch (e) {
          return bad(req, e);
        }
      },
    },
    {
      method: "POST", path: "/api/backups/destinations/:dest/delete", access: "backups.manage",
      doc: { summary: "Delete a destination no job uses", params: { dest: "destination id" }, responses: { "200": "{deleted: true}", "400": "jobs use it", "404": "no such destination" } },
      async handler(req) {
        const id = idParam(req.params.dest);
        const d = await getDestination(sql, box, id);
        if (!d) return fail(req, 404, "not_found", "no such destination");
        try {
          await deleteDestination(sql, id);
        } catch (e) {
          return bad(req, e);
        }
        await auditRequest(sql, req, "backup", "backup.destination.delete", `backup_destination:${id}`, true, { name: d.name, type: d.type });
        return wantsJson(req) ? json({ deleted: true }) : new Response(null, { status: 204, headers: { "hx-redirect": "/backups" } });
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/backups/test", access: "backups.manage", hostData: "host",
      doc: {
        summary: "Test a destination FROM a host: its agent lists, writes, reads back and deletes one object there",
        params: { id: "agent id (the host that will reach the destination)" },
        body: { destination: "destination id" },
        responses: { "200": "{ok, repository: whether a repository exists there, ms, error?}", "400": "no such destination" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const dest = await getDestination(sql, box, idParam(req.form.get("destination") ?? ""));
        if (!dest) return fail(req, 400, "bad_request", "no such destination");
        const r = await testDestination(d, who(req), dest.id, req.host!);
        const out = { ok: r.ok === true, host: { id: req.host!.id, hostname: req.host!.hostname }, destination: dest.id, repository: r.repository ?? null, ms: r.ms ?? null, ...(r.ok === true ? {} : { error: String(r.error ?? "failed") }) };
        if (wantsJson(req)) return json(out);
        return pages.partial("partials/backup-test", { ...out, name: dest.name });
      },
    },
    {
      method: "POST", path: "/api/backups/destinations/:dest/test", access: "backups.manage", hostData: "fleet",
      doc: {
        summary: "Test a destination from the list FROM a host you pick: its agent lists, writes, reads back and deletes one object there",
        params: { dest: "destination id" },
        body: { host: "agent id of a host within your scope (the host that will reach the destination)" },
        responses: { "200": "{ok, host, destination, repository, ms, error?}: error is the destination's own message, without secrets", "400": "no host picked", "404": "no such destination, or no such host within your scope" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const dest = await getDestination(sql, box, idParam(req.params.dest));
        if (!dest) return fail(req, 404, "not_found", "no such destination");
        const hostId = idParam(req.form.get("host") ?? "");
        if (!hostId) return fail(req, 400, "bad_request", "pick the host that will reach the destination");
        const host = await findHost(sql, req.scope, hostId);
        if (!host) return fail(req, 404, "not_found", "no such host");
        const r = await testDestination(d, who(req), dest.id, host);
        const out = { ok: r.ok === true, host: { id: host.id, hostname: host.hostname }, destination: dest.id, repository: r.repository ?? null, ms: r.ms ?? null, ...(r.ok === true ? {} : { error: String(r.error ?? "failed") }) };
        if (wantsJson(req)) return json(out);
        return pages.partial("partials/backup-test", { ...out, name: dest.name });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/backups/browse", access: "backups.restore", hostData: "host",
      doc: {
        summary: "Browse a snapshot: one directory level, read from the destination by this host's agent (a signed command; the server never reads the destination)",
        params: { id: "agent id of the host whose agent reads the repository (the host you would restore onto)" },
        query: { job: "job id", source: "agent id whose repository holds the snapshot (default: this host)", snapshot: "snapshot id, or latest", path: "absolute directory as backed up (default /)" },
        responses: { "200": "{snapshot, time, dir, items: [{path, name, type, size, mtimeMs, files}], truncated}", "400": "bad request, or the agent could not read it", "404": "no such host within your scope" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const j = await visibleJob(req, idParam(req.query.get("job") ?? ""));
        if (!j) return fail(req, 400, "bad_request", "no such job");
        const sourceId = idParam(req.query.get("source") ?? "") || req.host!.id;
        const source = sourceId === req.host!.id ? req.host! : await findHost(sql, req.scope, sourceId);
        if (!source || !jobCovers(j, source)) return fail(req, 400, "bad_request", "no such source host for this job within your scope");
        if (!jobCovers(j, req.host!) && req.host!.id !== source.id) return fail(req, 400, "bad_request", "browse from a host the job reaches (or from the source host)");
        const path = (req.query.get("path") ?? "").trim() || "/";
        let r: Record<string, unknown>;
        try {
          r = await browseSnapshot(d, who(req), { job: j, source, via: req.host!, snapshot: (req.query.get("snapshot") ?? "latest").trim() || "latest", path });
        } catch (e) {
          return bad(req, e);
        }
        if (r.ok !== true) return fail(req, 400, "browse_failed", String(r.error ?? "the agent could not read the snapshot"));
        const items = (Array.isArray(r.items) ? r.items : []) as Array<{ path: string; name: string; type: string; size: number; mtimeMs: number | null; files: number }>;
        const level = { snapshot: r.snapshot, time: r.time, dir: r.dir, items, truncated: r.truncated === true };
        if (wantsJson(req)) return json(level);
        const dir = String(r.dir ?? "/");
        const up = dir === "/" ? null : dir.slice(0, dir.lastIndexOf("/")) || "/";
        const link = (p: string) => `/api/hosts/${req.host!.id}/backups/browse?${new URLSearchParams({ job: String(j.id), source: String(source.id), snapshot: String(r.snapshot), path: p })}`;
        // what was ticked on other levels travels along (hx-include) and stays ticked
        const chosen = new Set(req.query.getAll("include").filter((p) => p.startsWith("/") && p.length <= 4096).slice(0, 500));
        const listed = new Set(items.map((i) => i.path));
        return pages.partial("partials/backup-browse", {
          ...level, upLink: up ? link(up) : null, kept: [...chosen].filter((p) => !listed.has(p)),
          items: items.map((i) => ({ ...i, chosen: chosen.has(i.path), isDir: i.type === "dir", link: i.type === "dir" ? link(i.path) : null, sizeText: bytes(i.size), at: i.mtimeMs ? new Date(i.mtimeMs).toISOString().replace("T", " ").slice(0, 19) : "" })),
        });
      },
    },
    {
      method: "POST", path: "/api/backups/jobs", access: "backups.manage", hostData: "fleet",
      doc: {
        summary: "Create a backup job, or change one (with id)",
        body: {
          id: "to change an existing job", name: "name", host: "agent id (one host), or", tag: "a host tag (every host carrying it)", paths: "absolute paths, one per line (or repeated)",
          excludes: "glob patterns, one per line", destination: "destination id", schedule: "manual | interval | daily", every_minutes: "interval: 5-44640", daily_at: "daily: HH:MM (UTC)",
          keep_last: "snapshots to keep (default 7)", keep_daily: "default 7", keep_weekly: "default 4", keep_monthly: "default 6",
          dump_kind: "postgres | mysql (optional database dump)", dump_host: "", dump_port: "", dump_user: "", dump_database: "", dump_password: "empty keeps the stored one",
        },
        responses: { "200": "{id}", "400": "invalid job" },
      },
      async handler(req) {
        const id = idParam(req.form.get("id") ?? "") || undefined;
        try {
          const input = jobInput(req, id);
          if (input.agentId !== null && !(await findHost(sql, req.scope, input.agentId))) throw new BackupRequestError("no such host");
          if (input.hostTag !== null && !req.scope.covers([input.hostTag])) throw new BackupRequestError("that tag is outside your scope");
          if (id) {
            const old = await visibleJob(req, id);
            if (!old) return fail(req, 404, "not_found", "no such job");
          }
          const saved = await saveJob(sql, box, by(req), input);
          await auditRequest(sql, req, "backup", id ? "backup.job.update" : "backup.job.create", `backup_job:${saved}`, true, {
            name: input.name, host: input.agentId, tag: input.hostTag, paths: input.paths, excludes: input.excludes, destination: input.destinationId,
            schedule: input.schedule, keep: input.keep, dump: input.dump ? { kind: input.dump.kind, database: input.dump.database } : null, dumpPasswordChanged: !!input.dumpPassword,
          });
          if (wantsJson(req)) return json({ id: saved });
          return new Response(null, { status: 204, headers: { "hx-redirect": `/backups/jobs/${saved}` } });
        } catch (e) {
          return bad(req, e);
        }
      },
    },
    {
      method: "POST", path: "/api/backups/jobs/:job/delete", access: "backups.manage", hostData: "fleet",
      doc: { summary: "Delete a job and its history (the repositories at the destination stay)", params: { job: "job id" }, responses: { "200": "{deleted: true}", "404": "no such job" } },
      async handler(req) {
        const j = await visibleJob(req, idParam(req.params.job));
        if (!j) return fail(req, 404, "not_found", "no such job");
        try {
          await deleteJob(sql, j.id);
        } catch (e) {
          return bad(req, e);
        }
        await auditRequest(sql, req, "backup", "backup.job.delete", `backup_job:${j.id}`, true, { name: j.name });
        return wantsJson(req) ? json({ deleted: true }) : new Response(null, { status: 204, headers: { "hx-redirect": "/backups" } });
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/backups/run", access: "backups.run", hostData: "host",
      doc: {
        summary: "Run a backup job now on one of its hosts",
        description: "The first run on a host creates the repository; its recovery key is shown ONCE (in this run's answer to the user who started it) and deleted from the server.",
        params: { id: "agent id" },
        body: { job: "job id" },
        responses: { "202": "{run, follow}: follow /api/backups/runs/<run> for progress and statistics", "400": "no such job for this host" },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const j = await visibleJob(req, idParam(req.form.get("job") ?? ""));
        if (!j || !jobCovers(j, req.host!) || req.host!.revoked_at) return fail(req, 400, "bad_request", "no such job on this host");
        try {
          const { run } = await startBackup(d, who(req), j, req.host!, "manual");
          if (wantsJson(req)) return json({ run, status: "running", follow: `/api/backups/runs/${run}` }, 202);
          return new Response(null, { status: 204, headers: { "hx-redirect": `/backups/runs/${run}` } });
        } catch (e) {
          return bad(req, e);
        }
      },
    },
    {
      method: "GET", path: "/hosts/:id/backups/restore", access: "backups.restore", hostData: "host",
      async handler(req) {
        // the jobs whose backups could land here: those reaching this host (a restore may come from another host of the job)
        const jobs = (await listJobs(sql, req.scope)).filter((x) => jobCovers(x, req.host!));
        const j = jobs.find((x) => x.id === idParam(req.query.get("job") ?? "")) ?? jobs[0];
        if (!j) return pages.page(req, "pages/backup-restore", `Restore onto ${req.host!.hostname}`, { none: true, host: { id: req.host!.id, hostname: req.host!.hostname } });
        const sources = await jobHosts(req, j, "backups.restore");
        const source = sources.find((h) => h.id === (idParam(req.query.get("source") ?? "") || req.host!.id)) ?? sources[0];
        const snaps = source ? await jobSnapshots(sql, j.id, source.id) : [];
        return pages.page(req, "pages/backup-restore", `Restore ${j.name} onto ${req.host!.hostname}`, {
          job: jobJson(j), jobs: jobs.map((x) => ({ id: x.id, name: x.name, selected: x.id === j.id })), host: { id: req.host!.id, hostname: req.host!.hostname }, phrase: `restore ${j.name} over ${req.host!.hostname}`,
          sources: sources.map((h) => ({ id: h.id, hostname: h.hostname, selected: h.id === source?.id })),
          snapshots: snaps.map((x) => ({ ...x, at: stamp(x.finished_at), size: bytes(x.bytes) })),
        });
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/backups/restore", access: "backups.restore", hostData: "host",
      doc: {
        summary: "Restore a snapshot (or some of its paths) onto this host",
        description: "target empty or / restores over the original location: dangerous, typed confirmation `restore <job> over <hostname>` and re-authentication in the console (an API token cannot).",
        params: { id: "agent id of the host to restore onto" },
        body: { job: "job id", source: "agent id whose repository holds the snapshot (default: this host)", snapshot: "snapshot id, or latest", target: "absolute directory to restore under (empty: the original location)", include: "paths to restore, one per line (default: everything)", confirm: "the typed phrase, for the original location", reauth: "password or authenticator code" },
        responses: { "202": "{run, follow}", "400": "bad request: no such job, or no such source host in your scope" },
      },
      dangerous: {
        async phrase(req) {
          const target = (req.form.get("target") ?? "").trim();
          if (target !== "" && target !== "/") return null;
          // a job outside the scope is refused by the handler as missing: its name is not shown
          const j = await visibleJob(req, idParam(req.form.get("job") ?? ""));
          return j ? `restore ${j.name} over ${req.host!.hostname}` : null;
        },
      },
      async handler(req) {
        const d = deps(req);
        if (!d) return noChannel(req);
        const j = await visibleJob(req, idParam(req.form.get("job") ?? ""));
        if (!j) return fail(req, 400, "bad_request", "no such job");
        const sourceId = idParam(req.form.get("source") ?? "") || req.host!.id;
        const source = sourceId === req.host!.id ? req.host! : await findHost(sql, req.scope, sourceId);
        if (!source || !jobCovers(j, source)) return fail(req, 400, "bad_request", "no such source host for this job within your scope");
        // another host than the job's own: only a host the job reaches
        if (!jobCovers(j, req.host!) && req.host!.id !== source.id) return fail(req, 400, "bad_request", "restore onto a host the job reaches (or onto the source host)");
        const target = (req.form.get("target") ?? "").trim() || "/";
        if (!target.startsWith("/") || target.split("/").includes("..")) return fail(req, 400, "bad_request", "target must be an absolute path without ..");
        try {
          const { run } = await startRestore(d, who(req), { job: j, source, target: req.host!, snapshot: (req.form.get("snapshot") ?? "latest").trim(), targetPath: target, include: listField(req.form, "include") });
          if (wantsJson(req)) return json({ run, status: "running", follow: `/api/backups/runs/${run}` }, 202);
          return new Response(null, { status: 204, headers: { "hx-redirect": `/backups/runs/${run}` } });
        } catch (e) {
          return bad(req, e);
        }
      },
    },
  ];

  /** A run as it stands, its progress lines and (once, to the user who started it) a new repository's recovery key. */
  async function liveModel(req: ConsoleRequest, r: RunRow, after: number) {
    const out = r.command_id ? await readCommandOutput(sql, r.command_id, after) : { lines: [], last: after };
    let recoveryKey: string | null = null;
    const mayTake = r.requested_by_user !== null ? r.requested_by_user === req.user?.id && !req.token : can(req, "backups.manage");
    if (r.hasRecoveryKey && mayTake) {
      recoveryKey = await takeRecoveryKey(sql, box, r.id);
      if (recoveryKey) await auditRequest(sql, req, "backup", "backup.recovery-key.shown", `backup_run:${r.id}`, true, { job: r.job_id, agentId: r.agent_id });
    }
    return {
      ...runModel(r), recoveryKey, last: out.last,
      lines: out.lines.slice(-1000).map((l) => ({ ...l, time: new Date(l.ts).toISOString().slice(11, 19) })),
    };
  }

  return routes;
}
