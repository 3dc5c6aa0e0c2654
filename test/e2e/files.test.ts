/**
 * File operations end to end: the compiled agent (Control runs as root, CI runs as root) on a
 * prepared root (SERVERMIND_AGENT_ROOT), the real server and its command channel, and the console
 * routes with their permission, host-scope, confirmation and re-authentication checks. Browse,
 * edit with a diff preview then apply, a file changed between preview and apply refused, rollback
 * to the exact bytes and mode, a binary upload and streamed download with SHA-256 checked end to
 * end, delete + rollback, policy refusals (outside the role's roots, the agent's own deny list,
 * a symlink escaping to /etc/shadow), an out-of-scope host answering 404, and the audit records.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueCommand } from "../../src/security/issue.ts";
import { roleIdByName } from "../../src/auth/roles.ts";
import { setRolePolicy } from "../../src/operations/files.ts";
import { SESSION_COOKIE } from "../../src/auth/session.ts";
import { consoleHarness, type ConsoleHarness, type TestSession } from "../support/console-app.ts";
import { agentBinary, agentDirs, enrollAgent, runAgent, startE2eServer, until, type AgentRun, type E2eServer } from "../support/agent-harness.ts";

setDefaultTimeout(180_000);

let server: E2eServer;
let agent: AgentRun;
let agentId: number;
let hostname: string;
let root: string;
let h: ConsoleHarness;
const users: Record<string, TestSession> = {};
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const ORIGINAL = "[main]\nport = 80\nname = app\n";

beforeAll(async () => {
  const bin = await agentBinary();
  server = await startE2eServer();
  root = mkdtempSync(join(tmpdir(), "sm-files-e2e-root-"));
  chmodSync(root, 0o755);
  for (const d of ["etc", "srv/app", "tmp"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "etc/shadow"), "root:$6$secret:19000::::::\n", { mode: 0o640 });
  writeFileSync(join(root, "etc/hosts"), "127.0.0.1 localhost\n");
  writeFileSync(join(root, "srv/app/config.ini"), ORIGINAL, { mode: 0o640 });
  symlinkSync("/etc/shadow", join(root, "srv/app/escape"));
  const { dir, env } = agentDirs();
  Object.assign(env, { SERVERMIND_AGENT_INTERVAL_MS: "2000", SERVERMIND_AGENT_ROOT: root });
  agentId = await enrollAgent(bin, env, server);
  agent = runAgent(bin, dir, env);
  hostname = (await server.db.sql`select hostname from agents where id = ${agentId}`)[0]!.hostname;
  await server.db.sql`update agents set tags = ${["group:web"]} where id = ${agentId}`;
  h = await consoleHarness(server.db, { security: { commandKey: server.commandKey, dispatch: server.dispatch } });
  const all = ["files.view", "files.read", "files.download", "files.write", "files.delete"];
  users.alice = await h.userWith(all, "alice");
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-alice"))!, { roots: ["/srv", "/tmp"], denied: [] }, "test");
  users.root = await h.userWith(all, "rooty");
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-rooty"))!, { roots: ["/"], denied: [] }, "test");
  users.nopolicy = await h.userWith(all, "nopolicy");
  users.viewer = await h.userWith(["files.view", "files.read"], "viewer");
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-viewer"))!, { roots: ["/srv"], denied: [] }, "test");
  users.scoped = await h.userWith(all, "scoped", ["group:db"]);
  await setRolePolicy(server.db.sql, (await roleIdByName(server.db.sql, "r-scoped"))!, { roots: ["/"], denied: [] }, "test");
});

afterAll(async () => {
  await h?.close();
  await agent?.stop();
  await server?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function call(method: "GET" | "POST", path: string, body?: Record<string, unknown>, user = "alice") {
  if (method === "POST") await h.reauth(users[user]!);
  const res = await h.send(api(path), { method, session: users[user], json: method === "POST" ? (body ?? {}) : undefined });
  const text = await res.text();
  return { status: res.status, body: (text.startsWith("{") ? JSON.parse(text) : { text }) as any };
}
const api = (p: string) => `/api/hosts/${agentId}/files${p}`;
const q = (p: string) => encodeURIComponent(p);
const disk = (p: string) => ({ bytes: readFileSync(join(root, p)), mode: statSync(join(root, p)).mode & 0o7777 });

describe("file operations with the compiled agent", () => {
  test("browse, edit with preview then apply, conflict, rollback, upload, download, delete, refusals, audit", async () => {
    await until("command channel up", async () => ((await issueCommand({ sql: server.db.sql, commandKey: server.commandKey, dispatch: server.dispatch, audit: () => {} }, { type: "user", id: 1, name: "t" }, agentId, "ping", {})).result as { ok?: boolean })?.ok, 90_000, 500);

    // browse
    const list = await call("GET", `?path=${q("/srv/app")}`);
    expect(list.status).toBe(200);
    expect(list.body.entries.map((e: any) => [e.name, e.type])).toEqual([["config.ini", "file"], ["escape", "link"]]);
    const page = await h.send(`/hosts/${agentId}/files?path=${q("/srv/app/config.ini")}`, { session: users.alice });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("port = 80");

    // edit: preview (diff + the hash it was based on), apply needs the typed phrase, then applies
    const next = "[main]\nport = 443\nname = app\n";
    const preview = await call("POST", "/preview", { path: "/srv/app/config.ini", content: next });
    expect(preview.status).toBe(200);
    expect(preview.body).toMatchObject({ ifMatch: sha(ORIGINAL), sha256: sha(next), binary: false });
    expect(preview.body.diff).toContain("-port = 80");
    expect(preview.body.diff).toContain("+port = 443");
    expect(disk("srv/app/config.ini").bytes.toString()).toBe(ORIGINAL); // a preview changes nothing
    // the console's preview partial (htmx): the diff and the confirmation the apply needs
    await h.reauth(users.alice!);
    const partial = await (await h.send(api("/preview"), { session: users.alice, form: { path: "/srv/app/config.ini", content: next }, headers: { "hx-request": "true" } })).text();
    expect(partial).toContain("+port = 443");
    expect(partial).toContain(`write ${hostname}:/srv/app/config.ini`);
    expect(partial).toContain(`value="${sha(ORIGINAL)}"`);
    const apply = { path: "/srv/app/config.ini", content: next, ifMatch: preview.body.ifMatch, sha256: preview.body.sha256 };
    const unconfirmed = await call("POST", "/write", apply);
    expect(unconfirmed.status).toBe(403);
    expect(unconfirmed.body.error.code).toBe("confirmation_required");
    const phrase = `write ${hostname}:/srv/app/config.ini`;
    const viewerTry = await call("POST", "/write", { ...apply, confirm: phrase }, "viewer");
    expect(viewerTry.status).toBe(403);
    const applied = await call("POST", "/write", { ...apply, confirm: phrase });
    expect(applied.status).toBe(200);
    expect(applied.body.result).toMatchObject({ ok: true, before: sha(ORIGINAL), sent: sha(next), after: sha(next) });
    expect(disk("srv/app/config.ini")).toEqual({ bytes: Buffer.from(next), mode: 0o640 });

    // changed between preview and apply: refused, the other change stays
    const p2 = await call("POST", "/preview", { path: "/srv/app/config.ini", content: "[main]\nport = 8443\n" });
    writeFileSync(join(root, "srv/app/config.ini"), "[main]\nport = 9000\n");
    const late = await call("POST", "/write", { path: "/srv/app/config.ini", content: "[main]\nport = 8443\n", ifMatch: p2.body.ifMatch, sha256: p2.body.sha256, confirm: phrase });
    expect(late.status).toBe(409);
    expect(late.body.error.message).toMatch(/changed since it was read/);
    expect(disk("srv/app/config.ini").bytes.toString()).toBe("[main]\nport = 9000\n");
    // content that is not what was previewed is refused before it reaches the agent
    expect((await call("POST", "/write", { ...apply, ifMatch: sha("[main]\nport = 9000\n"), content: "other", confirm: phrase })).status).toBe(400);

    // rollback of the applied edit: back to the exact original bytes and mode
    writeFileSync(join(root, "srv/app/config.ini"), next);
    const snaps = await call("GET", "/snapshots");
    expect(snaps.body.snapshots.map((s: any) => s.snapshot)).toContain(applied.body.result.snapshot);
    const rb = await call("POST", "/rollback", { snapshot: applied.body.result.snapshot, confirm: `rollback ${hostname}:${applied.body.result.snapshot}` });
    expect(rb.status).toBe(200);
    expect(disk("srv/app/config.ini")).toEqual({ bytes: Buffer.from(ORIGINAL), mode: 0o640 });
    expect((await call("GET", "/snapshots")).body.snapshots.find((s: any) => s.snapshot === applied.body.result.snapshot).rolled_back).toBe(true);

    // binary upload under /tmp (no phrase needed there), streamed download, SHA-256 end to end
    const blob = randomBytes(1_500_000);
    blob[0] = 0;
    const fd = new FormData();
    fd.append("path", "/tmp/blob.bin");
    fd.append("file", new Blob([blob]), "blob.bin");
    const up = await h.app.handle(new Request(`http://console.test${api("/upload")}`, {
      method: "POST", body: fd, headers: { cookie: `${SESSION_COOKIE}=${users.alice!.token}`, "x-csrf-token": users.alice!.csrf },
    }));
    // the console's form limit is 1 MiB: a larger upload is refused with 413, a smaller one goes through
    expect(up.status).toBe(413);
    const small = blob.subarray(0, 700_000);
    const fd2 = new FormData();
    fd2.append("path", "/tmp/"); // a directory: the uploaded file's name is appended
    fd2.append("file", new Blob([small]), "blob.bin");
    const up2 = await h.app.handle(new Request(`http://console.test${api("/upload")}`, {
      method: "POST", body: fd2, headers: { cookie: `${SESSION_COOKIE}=${users.alice!.token}`, "x-csrf-token": users.alice!.csrf },
    }));
    const up2b = (await up2.json()) as any;
    expect(up2.status).toBe(200);
    expect(up2b.result).toMatchObject({ ok: true, sent: sha(small), after: sha(small) });
    expect(sha(readFileSync(join(root, "tmp/blob.bin")))).toBe(sha(small));
    // a bigger file on disk (written by someone else) streams in chunks
    writeFileSync(join(root, "tmp/big.bin"), blob);
    const dl = await h.send(api(`/download?path=${q("/tmp/big.bin")}`), { session: users.alice });
    expect(dl.status).toBe(200);
    expect(dl.headers.get("x-content-sha256")).toBe(sha(blob));
    const got = Buffer.from(await dl.arrayBuffer());
    expect(got.length).toBe(blob.length);
    expect(sha(got)).toBe(sha(blob));

    // delete needs the phrase even under /tmp; rollback brings the bytes back
    expect((await call("POST", "/delete", { path: "/tmp/blob.bin" })).status).toBe(403);
    const del = await call("POST", "/delete", { path: "/tmp/blob.bin", confirm: `delete ${hostname}:/tmp/blob.bin` });
    expect(del.status).toBe(200);
    expect(existsSync(join(root, "tmp/blob.bin"))).toBe(false);
    expect((await call("POST", "/rollback", { snapshot: del.body.result.snapshot, confirm: `rollback ${hostname}:${del.body.result.snapshot}` })).status).toBe(200);
    expect(sha(readFileSync(join(root, "tmp/blob.bin")))).toBe(sha(small));

    // chmod under /tmp needs no phrase; the agent reports the new mode
    const cm = await call("POST", "/chmod", { path: "/tmp/blob.bin", mode: "0600" });
    expect(cm.body.result).toMatchObject({ ok: true, mode: "0600" });
    expect(statSync(join(root, "tmp/blob.bin")).mode & 0o777).toBe(0o600);

    // refusals: outside the role's roots, the symlink escape, the agent's own list, no policy at all
    expect((await call("GET", `?path=${q("/etc")}`)).status).toBe(403);
    const escape = await call("GET", `/content?path=${q("/srv/app/escape")}`);
    expect(escape.status).toBe(403);
    expect(escape.body.error.message).toContain("/etc/shadow");
    const shadow = await call("GET", `/content?path=${q("/etc/shadow")}`, undefined, "root");
    expect(shadow.status).toBe(403);
    expect(shadow.body.error.message).toMatch(/always denied/);
    expect((await call("GET", `/content?path=${q("/etc/hosts")}`, undefined, "root")).status).toBe(200);
    expect((await call("GET", `?path=${q("/srv")}`, undefined, "nopolicy")).status).toBe(403);
    expect((await call("POST", "/write", { path: "/tmp/x", content: "x", ifMatch: "absent", confirm: `write ${hostname}:/tmp/x` }, "viewer")).status).toBe(403);
    expect(readFileSync(join(root, "etc/shadow"), "utf8")).toContain("secret");

    // a host outside the user's scope answers 404, like one that does not exist
    expect((await call("GET", `?path=${q("/srv")}`, undefined, "scoped")).status).toBe(404);
    expect((await call("POST", "/delete", { path: "/tmp/blob.bin", confirm: `delete ${hostname}:/tmp/blob.bin` }, "scoped")).status).toBe(404);

    // audited as file_operation with host, path, hashes and result; no file bytes in the database
    const audit = await server.db.sql`select action, success, details from audit_log where category = 'file_operation' order by id`;
    const write = audit.find((a) => a.action === "file.write" && a.success && a.details.path === "/srv/app/config.ini")!;
    expect(write.details).toMatchObject({ host: hostname, agentId, before: sha(ORIGINAL), after: sha(next), result: "ok" });
    expect(audit.find((a) => a.action === "file.write" && !a.success)!.details).toMatchObject({ result: "conflict" });
    expect(audit.some((a) => a.action === "file.rollback" && a.success)).toBe(true);
    expect(audit.find((a) => a.action === "file.download")!.details).toMatchObject({ path: "/tmp/big.bin", before: sha(blob), result: "ok" });
    expect(audit.some((a) => a.action === "file.read" && !a.success && a.details.result === "denied")).toBe(true);
    const stored = await server.db.sql`select args::text as a, result::text as r from security_commands where action like 'file.%'`;
    for (const s of stored) expect(s.a + s.r).not.toContain(small.subarray(0, 64).toString("base64"));
    const ops = await server.db.sql`select op, path, before_sha256, after_sha256, success from file_operations where agent_id = ${agentId} and op = 'write' and success order by id`;
    expect(ops[0]).toMatchObject({ path: "/srv/app/config.ini", before_sha256: sha(ORIGINAL), after_sha256: sha(next) });
  });
});
