/**
 * File operations on a host (issue #14): browse, view, download (streamed, size-limited), upload,
 * edit with a unified-diff preview then apply, chmod/chown/rename/delete, snapshots and one-click
 * rollback. HTML under /hosts/:id/files, JSON under /api/hosts/:id/files/*. Every route names a
 * host (`hostData: "host"`, found within the scope of its permission, else 404), carries the
 * user's path policy for that permission inside the signed command, and is audited as
 * `file_operation` (host, path, SHA-256 before/after, result). The agent is the authority on
 * paths (it resolves symlinks and refuses what the policy or its own list denies). No SQL here:
 * src/operations/files.ts owns the tables.
 *
 * Dangerous (typed phrase "<verb> <hostname>:<path>" + fresh re-authentication): delete, chown
 * and rollback always; write, upload, chmod and rename unless every path lies under /tmp or
 * /var/tmp.
 */
import type { ConsoleServices } from "../deps.ts";
import type { ConsoleRequest, ConsoleRoute } from "../route.ts";
import { can } from "../route.ts";
import { json, securityHeaders, type Pages } from "../respond.ts";
import { auditRequest } from "../audit-request.ts";
import { filePolicyRoutes } from "./policy-routes.ts";
import {
  cleanPath, FILE_PERMISSION, fileCommand, fileSnapshots, MAX_DOWNLOAD, MAX_WRITE, previewWrite, sha256, snapshotOperation, userPolicy,
  type FileOp, type FileResult,
} from "../../operations/files.ts";


const STATUS: Record<string, number> = { denied: 403, not_found: 404, conflict: 409, bad_request: 400, too_large: 413, unavailable: 503 };
const statusOf = (r: FileResult) => (r.ok ? 200 : (STATUS[r.code ?? ""] ?? 502));

const SCRATCH = ["/tmp", "/var/tmp"];
const scratch = (p: string | null) => p !== null && SCRATCH.some((t) => p.startsWith(t + "/"));

/** The target path of a form: `path`, with an uploaded file's name appended when it ends in "/". */
function formPath(form: URLSearchParams): string | null {
  const raw = form.get("path") ?? "";
  const name = form.get("file.name");
  if (raw.endsWith("/") && name && !name.includes("/")) return cleanPath(raw + name);
  return cleanPath(raw);
}

/** "<verb> <hostname>:<path>"; null (no confirmation) for scratch paths when `always` is false. */
const danger = (verb: string, always: boolean, extra?: string) => ({
  phrase(req: ConsoleRequest) {
    const path = formPath(req.form);
    const other = extra ? cleanPath(req.form.get(extra)) : null;
    if (!always && scratch(path) && (!extra || scratch(other))) return null;
    return `${verb} ${req.host!.hostname}:${path ?? req.form.get("snapshot") ?? ""}`;
  },
});

/** The new content of a write: `content` (text), `contentBase64`, or an uploaded `file` part. */
function contentOf(form: URLSearchParams): Buffer | null {
  const b64 = form.get("contentBase64") ?? form.get("file.base64");
  if (b64 !== null) return Buffer.from(b64, "base64");
  const text = form.get("content");
  return text === null ? null : Buffer.from(text.replace(/\r\n/g, "\n"), "utf8");
}

export function fileRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  const { sql } = s;

  const fail = (req: ConsoleRequest, status: number, code: string, message: string) =>
    req.htmx.request ? pages.formErrors(req, [message], status) : json({ error: { code, message } }, status);

  /** Runs one file command for the request's host with the user's policy for `op`. */
  async function run(req: ConsoleRequest, op: FileOp, args: Record<string, unknown>, audited = op !== "list", auditAs = `file.${op}`) {
    const host = req.host!;
    if (!s.security) return { id: "", result: { ok: false, code: "unavailable", error: "no command channel to agents is set up on this server" } as FileResult };
    if (host.revoked_at) return { id: "", result: { ok: false, code: "not_found", error: "no such host" } as FileResult };
    const permission = FILE_PERMISSION[op === "read" && req.url.pathname.endsWith("/download") ? "download" : op];
    const policy = await userPolicy(sql, req.user!.id, permission, host);
    const done = await fileCommand({ sql, commandKey: s.security.commandKey, dispatch: s.security.dispatch, now: s.security.now }, { type: "user", id: req.user!.id, name: req.user!.username }, host, op, args, policy);
    if (audited) {
      const r = done.result;
      const str = (v: unknown) => (typeof v === "string" ? v : null);
      await auditRequest(sql, req, "file_operation", auditAs, `agent:${host.id}:${String(args.path ?? args.snapshot ?? "")}`, !!r.ok, {
        host: host.hostname, agentId: host.id, path: str(args.path) ?? str(r.path), ...(args.to ? { to: args.to } : {}),
        before: op === "read" ? str(r.sha256) : str(r.before), after: op === "read" ? str(r.sha256) : str(r.after), sent: str(args.sha256),
        ...(r.snapshot ? { snapshot: r.snapshot } : {}), ...(args.snapshot ? { rollback: args.snapshot } : {}),
        command: done.id, result: r.ok ? "ok" : (r.code ?? "failed"), ...(r.ok ? {} : { error: r.error }),
      });
    }
    return done;
  }

  const answer = (req: ConsoleRequest, done: { id: string; result: FileResult }) => {
    const r = done.result;
    if (!r.ok) return fail(req, statusOf(r), r.code ?? "failed", String(r.error ?? "failed"));
    return req.htmx.request ? pages.partial("partials/files-result", { ok: true, message: `${r.action ?? "done"}: ${r.path ?? ""}${r.to ? ` → ${r.to}` : ""}`, snapshot: r.snapshot ?? "" }) : json({ command: done.id, result: r });
  };

  const pathOf = (req: ConsoleRequest, from: URLSearchParams) => cleanPath(from.get("path"));
  const badPath = (req: ConsoleRequest) => fail(req, 400, "bad_request", "path must be an absolute path without . or .. components");

  /** Reads a whole file (at most `max` bytes) in chunks; the SHA-256 is checked end to end. */
  async function readWhole(req: ConsoleRequest, path: string, max: number): Promise<{ bytes: Buffer | null; result: FileResult }> {
    const first = await run(req, "read", { path, offset: 0 }, false);
    if (!first.result.ok) return { bytes: null, result: first.result };
    const size = Number(first.result.size);
    if (size > max) return { bytes: null, result: { ok: false, code: "too_large", error: `${path} is ${size} bytes; the limit is ${max}` } };
    const parts = [Buffer.from(String(first.result.content), "base64")];
    let off = parts[0]!.length;
    for (let i = 0; !first.result.eof && off < size && i < 1 + max / 65536; i++) {
      const r = (await run(req, "read", { path, offset: off }, false)).result;
      if (!r.ok) return { bytes: null, result: r };
      const b = Buffer.from(String(r.content), "base64");
      if (sha256(b) !== r.chunkSha256) return { bytes: null, result: { ok: false, code: "conflict", error: "a chunk arrived damaged (SHA-256 mismatch)" } };
      parts.push(b);
      off += b.length;
      if (r.eof || b.length === 0) break;
    }
    const bytes = Buffer.concat(parts);
    if (sha256(bytes) !== first.result.sha256) return { bytes: null, result: { ok: false, code: "conflict", error: `${path} changed while it was read (SHA-256 mismatch)` } };
    return { bytes, result: first.result };
  }

  const write = (upload: boolean) => async (req: ConsoleRequest) => {
    const path = formPath(req.form);
    if (!path) return badPath(req);
    const content = contentOf(req.form);
    if (!content) return fail(req, 400, "bad_request", upload ? "a file is required" : "content is required");
    if (content.length > MAX_WRITE) return fail(req, 413, "too_large", `content of ${content.length} bytes is over the ${MAX_WRITE} byte limit`);
    const sent = sha256(content);
    // the preview's hash of the new content: what is applied is what was previewed
    const expected = req.form.get("sha256");
    if (expected && expected !== sent) return fail(req, 400, "bad_request", "the content differs from the previewed content (SHA-256 mismatch)");
    const ifMatch = req.form.get("ifMatch") ?? (upload ? "absent" : null);
    if (!ifMatch) return fail(req, 400, "bad_request", "ifMatch (the SHA-256 the preview was based on, or \"absent\") is required");
    const mode = req.form.get("mode");
    if (mode !== null && mode !== "" && !/^[0-7]{3,4}$/.test(mode)) return fail(req, 400, "bad_request", "mode must be octal, e.g. 0644");
    const done = await run(req, "write", { path, content: content.toString("base64"), sha256: sent, ifMatch, ...(mode ? { mode: parseInt(mode, 8) } : {}) });
    return answer(req, done);
  };

  return [
    ...filePolicyRoutes(s, pages),
    {
      method: "GET", path: "/hosts/:id/files", access: "files.view", hostData: "host",
      async handler(req) {
        const host = req.host!;
        const path = cleanPath(req.query.get("path") ?? "/") ?? "/";
        const list = await run(req, "list", { path });
        let file: { path: string; text: string | null; sha256: string; size: number; mode: string; download: string } | null = null;
        let error = list.result.ok ? "" : String(list.result.error ?? "");
        if (!list.result.ok && /not a directory/.test(error) && can(req, "files.read", host)) {
          const r = await readWhole(req, path, MAX_WRITE);
          await auditFileRead(req, path, r.result);
          if (r.bytes) {
            const text = r.bytes.includes(0) ? null : r.bytes.toString("utf8");
            file = { path, text, sha256: String(r.result.sha256), size: r.bytes.length, mode: String(r.result.mode), download: `/api/hosts/${host.id}/files/download?path=${encodeURIComponent(path)}` };
            error = "";
          } else error = String(r.result.error ?? "");
        }
        const parent = path === "/" ? null : path.replace(/\/[^/]+$/, "") || "/";
        const entries = ((list.result.entries as Array<Record<string, unknown>>) ?? []).map((e) => ({ ...e, href: `/hosts/${host.id}/files?path=${encodeURIComponent(path === "/" ? `/${e.name}` : `${path}/${e.name}`)}` }));
        const snapshots = (await fileSnapshots(sql, host, 20)).map((o) => ({ ...o, ts: o.ts.toISOString() }));
        return pages.page(req, "pages/files", `Files on ${host.hostname}`, {
          host, path, parent: parent === null ? null : `/hosts/${host.id}/files?path=${encodeURIComponent(parent)}`, entries, error, file,
          canWrite: can(req, "files.write", host), canDownload: can(req, "files.download", host), snapshots,
        });
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/files", access: "files.view", hostData: "host",
      doc: { summary: "List a directory on a host", query: { path: "absolute directory path" }, responses: { "200": "{path, entries: [{name, type, size, mode, uid, gid, mtimeMs, target?, denied?}], truncated}", "403": "outside your file policy or always denied on the agent" } },
      async handler(req) {
        const path = pathOf(req, req.query);
        if (!path) return badPath(req);
        const done = await run(req, "list", { path });
        return done.result.ok ? json({ path: done.result.path, entries: done.result.entries, truncated: done.result.truncated }) : answer(req, done);
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/files/content", access: "files.read", hostData: "host",
      doc: { summary: "Read one chunk of a file (base64, SHA-256 of the chunk; of the whole file at offset 0)", query: { path: "absolute file path", offset: "byte offset (default 0)", length: "bytes, at most 524288" }, responses: { "200": "file.read result (docs/protocol.md 9.3)" } },
      async handler(req) {
        const path = pathOf(req, req.query);
        if (!path) return badPath(req);
        const offset = Number(req.query.get("offset") ?? 0);
        const length = req.query.get("length") === null ? undefined : Number(req.query.get("length"));
        if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) return fail(req, 400, "bad_request", "offset and length must be non-negative integers");
        const done = await run(req, "read", { path, offset, ...(length !== undefined ? { length } : {}) });
        return done.result.ok ? json(done.result) : answer(req, done);
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/files/download", access: "files.download", hostData: "host",
      doc: { summary: "Download a file, streamed (at most 64 MiB); x-content-sha256 carries its SHA-256", query: { path: "absolute file path" }, responses: { "200": "the bytes", "413": "over the download limit" } },
      async handler(req) {
        const path = pathOf(req, req.query);
        if (!path) return badPath(req);
        const first = await run(req, "read", { path, offset: 0 }, true, "file.download");
        if (!first.result.ok) return answer(req, first);
        const size = Number(first.result.size);
        if (size > MAX_DOWNLOAD) return fail(req, 413, "too_large", `${path} is ${size} bytes; downloads are limited to ${MAX_DOWNLOAD}`);
        const expected = String(first.result.sha256);
        const hash = new Bun.CryptoHasher("sha256");
        let offset = 0;
        let pending: FileResult | null = first.result;
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            const r: FileResult = pending ?? (await run(req, "read", { path, offset }, false)).result;
            pending = null;
            if (!r.ok) return controller.error(new Error(String(r.error)));
            const b = Buffer.from(String(r.content), "base64");
            if (sha256(b) !== r.chunkSha256) return controller.error(new Error("chunk damaged in transit"));
            hash.update(b);
            offset += b.length;
            if (b.length) controller.enqueue(b);
            if (r.eof || b.length === 0 || offset >= size) {
              const got = hash.digest("hex");
              if (got !== expected || offset !== size) {
                await auditRequest(sql, req, "file_operation", "file.download", `agent:${req.host!.id}:${path}`, false, { host: req.host!.hostname, path, before: expected, after: got, result: "changed during download" });
                return controller.error(new Error(`${path} changed during the download (SHA-256 mismatch)`));
              }
              controller.close();
            }
          },
        });
        const name = path.split("/").pop()!.replace(/[^A-Za-z0-9._-]/g, "_") || "download";
        return new Response(stream, {
          headers: securityHeaders(new Headers({
            "content-type": "application/octet-stream", "content-length": String(size), "content-disposition": `attachment; filename="${name}"`, "x-content-sha256": expected,
          })),
        });
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/files/preview", access: "files.write", hostData: "host",
      doc: { summary: "Preview a write: unified diff, ifMatch (SHA-256 the preview is based on) and sha256 of the new content", body: { path: "absolute file path", content: "new text", contentBase64: "new bytes (instead of content)" } },
      async handler(req) {
        const path = pathOf(req, req.form);
        if (!path) return badPath(req);
        const content = contentOf(req.form);
        if (!content) return fail(req, 400, "bad_request", "content is required");
        if (content.length > MAX_WRITE) return fail(req, 413, "too_large", `content of ${content.length} bytes is over the ${MAX_WRITE} byte limit`);
        const cur = await readWhole(req, path, MAX_WRITE);
        if (!cur.bytes && cur.result.code !== "not_found") return answer(req, { id: "", result: cur.result });
        const p = previewWrite(path, cur.bytes, content);
        if (!req.htmx.request) return json(p);
        const dangerous = !scratch(path);
        return pages.partial("partials/files-preview", {
          ...p, agentId: req.host!.id, csrf: req.csrf, contentBase64: content.toString("base64"), dangerous, phrase: `write ${req.host!.hostname}:${path}`,
        });
      },
    },
    { method: "POST", path: "/api/hosts/:id/files/write", access: "files.write", hostData: "host", dangerous: danger("write", false), doc: { summary: "Write a file (refused with 409 when it changed since the preview)", body: { path: "absolute file path", content: "text", contentBase64: "bytes", ifMatch: "SHA-256 from the preview, or absent", sha256: "the preview's sha256 of the new content", mode: "octal, e.g. 0644", confirm: "write <hostname>:<path> outside /tmp", reauth: "password or TOTP code" } }, handler: write(false) },
    { method: "POST", path: "/api/hosts/:id/files/upload", access: "files.write", hostData: "host", dangerous: danger("write", false), doc: { summary: "Upload a file (multipart; a path ending in / takes the file name)", body: { path: "target path or directory/", file: "the file part (1 MiB at most)", ifMatch: "default absent" } }, handler: write(true) },
    {
      method: "POST", path: "/api/hosts/:id/files/chmod", access: "files.write", hostData: "host", dangerous: danger("chmod", false),
      async handler(req) {
        const path = pathOf(req, req.form);
        if (!path) return badPath(req);
        const mode = req.form.get("mode") ?? "";
        if (!/^[0-7]{3,4}$/.test(mode)) return fail(req, 400, "bad_request", "mode must be octal, e.g. 0644");
        return answer(req, await run(req, "chmod", { path, mode: parseInt(mode, 8) }));
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/files/chown", access: "files.write", hostData: "host", dangerous: danger("chown", true),
      async handler(req) {
        const path = pathOf(req, req.form);
        if (!path) return badPath(req);
        const uid = Number(req.form.get("uid"));
        const gid = Number(req.form.get("gid"));
        if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid < 0 || gid < 0 || req.form.get("uid") === "" || req.form.get("gid") === "") return fail(req, 400, "bad_request", "uid and gid must be numeric ids");
        return answer(req, await run(req, "chown", { path, uid, gid }));
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/files/rename", access: "files.write", hostData: "host", dangerous: danger("rename", false, "to"),
      async handler(req) {
        const path = pathOf(req, req.form);
        const to = cleanPath(req.form.get("to"));
        if (!path || !to) return badPath(req);
        return answer(req, await run(req, "rename", { path, to }));
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/files/delete", access: "files.delete", hostData: "host", dangerous: danger("delete", true),
      async handler(req) {
        const path = pathOf(req, req.form);
        if (!path) return badPath(req);
        return answer(req, await run(req, "delete", { path }));
      },
    },
    {
      method: "GET", path: "/api/hosts/:id/files/snapshots", access: "files.view", hostData: "host",
      async handler(req) {
        return json({ snapshots: await fileSnapshots(sql, req.host!) });
      },
    },
    {
      method: "POST", path: "/api/hosts/:id/files/rollback", access: "files.write", hostData: "host", dangerous: danger("rollback", true),
      async handler(req) {
        const snapshot = req.form.get("snapshot") ?? "";
        const op = await snapshotOperation(sql, req.host!, snapshot);
        if (!op) return fail(req, 404, "not_found", "no file operation with that snapshot on this host");
        return answer(req, await run(req, "rollback", { snapshot }));
      },
    },
  ];

  async function auditFileRead(req: ConsoleRequest, path: string, r: FileResult) {
    await auditRequest(sql, req, "file_operation", "file.read", `agent:${req.host!.id}:${path}`, !!r.ok, {
      host: req.host!.hostname, agentId: req.host!.id, path, before: typeof r.sha256 === "string" ? r.sha256 : null, result: r.ok ? "ok" : (r.code ?? "failed"), ...(r.ok ? {} : { error: r.error }),
    });
  }
}
