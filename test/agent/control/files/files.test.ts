/**
 * File operations inside Control, on a temp root: the path policy after symlink resolution, ".."
 * refused, a directory swapped for a symlink after resolution detected, the built-in deny list,
 * snapshots and rollback of every change, a binary round trip with SHA-256, and a file changed
 * between preview and apply refused. Runs as any user; chown needs root (CI runs as root).
 */
import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import { generateKeyPairSync, createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFilesHandler } from "../../../../agent/control/files/index.ts";
import { resolvePath, verifyHeld } from "../../../../agent/control/files/resolve.ts";
import { signCommand } from "../../../../src/ingest/frame/commands.ts";
import { createCommandChecker } from "../../../../agent/control/process.ts";

const { publicKey, privateKey } = generateKeyPairSync("ed25519");
const AGENT = 3;
const dirs: string[] = [];
let root: string;
let state: string;
let run: (action: string, args: Record<string, unknown>, policy?: unknown) => any;
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const ALLOW = { rules: [{ roots: ["/srv", "/tmp"], denied: ["/srv/private"] }] };

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "sm-files-root-"));
  state = mkdtempSync(join(tmpdir(), "sm-files-state-"));
  dirs.push(root, state);
  for (const d of ["etc", "srv/app", "srv/private", "tmp", "proc"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "etc/shadow"), "root:$6$secret:19000::::::\n", { mode: 0o640 });
  writeFileSync(join(root, "etc/hosts"), "127.0.0.1 localhost\n");
  writeFileSync(join(root, "srv/app/config.ini"), "[main]\nport = 80\n", { mode: 0o640 });
  writeFileSync(join(root, "srv/private/key"), "k");
  const h = createFilesHandler({ root, stateDir: state, publicKey, agentId: AGENT });
  run = (action, args, policy = ALLOW) =>
    h(signCommand({ v: 1, id: `cmd-${randomBytes(6).toString("hex")}`, agentId: AGENT, action, args: { ...args, policy }, issuedMs: Date.now(), requestedBy: "user:1 alice" }, privateKey));
});
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe("path policy and resolution", () => {
  test("a symlink inside an allowed root that points at /etc/shadow is refused for read, write and chmod", () => {
    symlinkSync("/etc/shadow", join(root, "srv/app/link"));
    symlinkSync("../../etc/shadow", join(root, "srv/app/rel"));
    for (const p of ["/srv/app/link", "/srv/app/rel"]) {
      const r = run("file.read", { path: p });
      expect(r).toMatchObject({ ok: false, code: "denied" });
      expect(r.error).toContain("/etc/shadow");
      expect(run("file.write", { path: p, content: "", sha256: sha(""), ifMatch: "absent" }).code).toBe("denied");
      expect(run("file.chmod", { path: p, mode: 0o644 }).code).toBe("denied");
    }
    // even a policy that allows "/" cannot open the always-denied list
    expect(run("file.read", { path: "/srv/app/link" }, { rules: [{ roots: ["/"], denied: [] }] }).code).toBe("denied");
    expect(readFileSync(join(root, "etc/shadow"), "utf8")).toContain("secret");
    expect(statSync(join(root, "etc/shadow")).mode & 0o777).toBe(0o640);
  });

  test("a symlink to a path outside the roots is refused; one that stays inside is followed", () => {
    symlinkSync("/etc/hosts", join(root, "srv/out"));
    symlinkSync("app/config.ini", join(root, "srv/in"));
    expect(run("file.read", { path: "/srv/out" }).code).toBe("denied");
    const r = run("file.read", { path: "/srv/in" });
    expect(r).toMatchObject({ ok: true, path: "/srv/app/config.ini" });
    expect(Buffer.from(r.content, "base64").toString()).toBe("[main]\nport = 80\n");
  });

  test("a hard link inside an allowed root to /etc/shadow is refused", () => {
    linkSync(join(root, "etc/shadow"), join(root, "srv/app/hard"));
    expect(run("file.read", { path: "/srv/app/hard" })).toMatchObject({ ok: false, code: "denied" });
    expect(run("file.chmod", { path: "/srv/app/hard", mode: 0o644 }).code).toBe("denied");
    expect(statSync(join(root, "etc/shadow")).mode & 0o777).toBe(0o640);
  });

  test('".." is refused, and a link climbing above the root stays inside it', () => {
    for (const p of ["/srv/../etc/shadow", "/srv/app/../../etc/hosts", "srv/app", "/srv/./app"]) expect(run("file.read", { path: p }).code).toBe("bad_request");
    symlinkSync("../../../../../../../../srv/app/config.ini", join(root, "srv/climb"));
    const r = resolvePath(root, "/srv/climb", { followLeaf: true });
    expect(r.path).toBe("/srv/app/config.ini");
    expect(r.host).toBe(join(root, "srv/app/config.ini"));
    r.close();
  });

  test("a directory swapped for a symlink after resolution is detected, and the held fd still reads the original", () => {
    const r = resolvePath(root, "/srv/app/config.ini", { followLeaf: true });
    renameSync(join(root, "srv/app"), join(root, "srv/app-old"));
    symlinkSync("/etc", join(root, "srv/app")); // absolute targets are in-root paths
    writeFileSync(join(root, "etc/config.ini"), "attacker\n");
    expect(() => verifyHeld(root, r)).toThrow(/changed while it was resolved|replaced/);
    expect(readFileSync(`/proc/self/fd/${r.fd}`, "utf8")).toBe("[main]\nport = 80\n");
    r.close();
    // the same swap before a command: the link is resolved and the target is outside the roots
    expect(run("file.read", { path: "/srv/app/config.ini" }).code).toBe("denied");
  });

  test("the built-in deny list: /etc/shadow, /proc and the agent's state directory, whatever the policy", () => {
    const all = { rules: [{ roots: ["/"], denied: [] }] };
    expect(run("file.read", { path: "/etc/shadow" }, all).code).toBe("denied");
    expect(run("file.list", { path: "/proc" }, all).code).toBe("denied");
    expect(run("file.read", { path: "/etc/hosts" }, all).ok).toBe(true);
    // the agent's state dir is inside the root here: reach it by a link from an allowed root
    const inside = mkdtempSync(join(root, "tmp/state-"));
    const h = createFilesHandler({ root, stateDir: inside, publicKey, agentId: AGENT });
    writeFileSync(join(inside, "identity.db"), "x");
    symlinkSync(inside.slice(root.length), join(root, "tmp/s")); // in-root absolute target
    const cmd = (path: string) => h(signCommand({ v: 1, id: `cmd-${randomBytes(6).toString("hex")}`, agentId: AGENT, action: "file.read", args: { path, policy: all }, issuedMs: Date.now(), requestedBy: "t" }, privateKey));
    expect(cmd("/tmp/s/identity.db")).toMatchObject({ ok: false, code: "denied" });
    // no policy at all allows nothing; a denied path of the role is refused
    expect(run("file.read", { path: "/srv/app/config.ini" }, {}).code).toBe("denied");
    expect(run("file.read", { path: "/srv/private/key" }).code).toBe("denied");
  });

  test("unsigned or foreign commands are refused", () => {
    const h = createFilesHandler({ root, stateDir: state, publicKey, agentId: AGENT });
    expect(h({ v: 1, action: "file.read", args: { path: "/srv/app/config.ini" } })).toMatchObject({ ok: false, code: "refused" });
    const other = generateKeyPairSync("ed25519").privateKey;
    expect(h(signCommand({ v: 1, id: "cmd-foreign1", agentId: AGENT, action: "file.read", args: { path: "/tmp", policy: ALLOW }, issuedMs: Date.now(), requestedBy: "x" }, other)).ok).toBe(false);
  });
});

describe("changes, snapshots and rollback", () => {
  test("binary-safe write and chunked read with SHA-256 end to end", () => {
    const bytes = randomBytes(1_300_000);
    bytes[0] = 0;
    bytes[1] = 0xff;
    const w = run("file.write", { path: "/tmp/blob.bin", content: bytes.toString("base64"), sha256: sha(bytes), ifMatch: "absent" });
    expect(w).toMatchObject({ ok: true, before: null, sent: sha(bytes), after: sha(bytes), size: bytes.length });
    expect(sha(readFileSync(join(root, "tmp/blob.bin")))).toBe(sha(bytes));
    const parts: Buffer[] = [];
    let whole = "";
    for (let off = 0, i = 0; i < 10; i++) {
      const r = run("file.read", { path: "/tmp/blob.bin", offset: off });
      expect(r.ok).toBe(true);
      const chunk = Buffer.from(r.content, "base64");
      expect(sha(chunk)).toBe(r.chunkSha256);
      if (off === 0) whole = r.sha256;
      parts.push(chunk);
      off += chunk.length;
      if (r.eof) break;
    }
    expect(parts.length).toBe(3);
    expect(sha(Buffer.concat(parts))).toBe(sha(bytes));
    expect(whole).toBe(sha(bytes));
    // damaged in transit: the content does not match the sha256 sent with it
    expect(run("file.write", { path: "/tmp/x", content: Buffer.from("abc").toString("base64"), sha256: sha("abd"), ifMatch: "absent" }).code).toBe("bad_request");
    expect(existsSync(join(root, "tmp/x"))).toBe(false);
  });

  test("a file changed between preview and apply is refused and left alone", () => {
    const before = readFileSync(join(root, "srv/app/config.ini"));
    const preview = run("file.read", { path: "/srv/app/config.ini" });
    writeFileSync(join(root, "srv/app/config.ini"), "[main]\nport = 8080\n"); // someone else
    const next = "[main]\nport = 443\n";
    const r = run("file.write", { path: "/srv/app/config.ini", content: Buffer.from(next).toString("base64"), sha256: sha(next), ifMatch: preview.sha256 });
    expect(r).toMatchObject({ ok: false, code: "conflict" });
    expect(preview.sha256).toBe(sha(before));
    expect(readFileSync(join(root, "srv/app/config.ini"), "utf8")).toBe("[main]\nport = 8080\n");
  });

  test("write, chmod, chown, rename and delete each roll back exactly", () => {
    const file = join(root, "srv/app/config.ini");
    const orig = { text: readFileSync(file, "utf8"), mode: statSync(file).mode & 0o7777, uid: statSync(file).uid, gid: statSync(file).gid };
    const state = () => ({ text: readFileSync(file, "utf8"), mode: statSync(file).mode & 0o7777, uid: statSync(file).uid, gid: statSync(file).gid });
    const next = "[main]\nport = 443\n";
    const w = run("file.write", { path: "/srv/app/config.ini", content: Buffer.from(next).toString("base64"), sha256: sha(next), ifMatch: sha(orig.text) });
    expect(w).toMatchObject({ ok: true, before: sha(orig.text), after: sha(next), mode: "0640" });
    expect(readFileSync(file, "utf8")).toBe(next);
    expect(readdirNames(join(root, "srv/app"))).toEqual(["config.ini"]); // no temp file left
    expect(run("file.rollback", { snapshot: w.snapshot })).toMatchObject({ ok: true, after: sha(orig.text) });
    expect(state()).toEqual(orig);

    const m = run("file.chmod", { path: "/srv/app/config.ini", mode: 0o600 });
    expect(m).toMatchObject({ ok: true, mode: "0600" });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(run("file.rollback", { snapshot: m.snapshot }).ok).toBe(true);
    expect(state()).toEqual(orig);

    if (process.getuid?.() === 0) {
      const o = run("file.chown", { path: "/srv/app/config.ini", uid: 65534, gid: 65534 });
      expect(o).toMatchObject({ ok: true, uid: 65534, gid: 65534 });
      expect(run("file.rollback", { snapshot: o.snapshot }).ok).toBe(true);
      expect(state()).toEqual(orig);
    } else {
      expect(run("file.chown", { path: "/srv/app/config.ini", uid: 65534, gid: 65534 }).ok).toBe(false);
    }

    const rn = run("file.rename", { path: "/srv/app/config.ini", to: "/srv/app/config.old" });
    expect(rn).toMatchObject({ ok: true, to: "/srv/app/config.old" });
    expect(existsSync(file)).toBe(false);
    expect(run("file.rename", { path: "/srv/app/config.old", to: "/etc/config.old" }).code).toBe("denied");
    expect(run("file.rollback", { snapshot: rn.snapshot }).ok).toBe(true);
    expect(state()).toEqual(orig);

    const d = run("file.delete", { path: "/srv/app/config.ini" });
    expect(d).toMatchObject({ ok: true, before: sha(orig.text) });
    expect(existsSync(file)).toBe(false);
    expect(run("file.rollback", { snapshot: d.snapshot })).toMatchObject({ ok: true });
    expect(state()).toEqual(orig);

    // a created file rolls back to not existing; the snapshot lives under the agent's state dir
    const c = run("file.write", { path: "/tmp/new.txt", content: Buffer.from("hi").toString("base64"), sha256: sha("hi"), ifMatch: "absent" });
    expect(existsSync(join(state_(), "control/file-snapshots", `${c.snapshot}.json`))).toBe(true);
    expect(run("file.rollback", { snapshot: c.snapshot }).ok).toBe(true);
    expect(existsSync(join(root, "tmp/new.txt"))).toBe(false);
    // deleting a symlink removes the link, not its target
    symlinkSync("app/config.ini", join(root, "srv/l"));
    const dl = run("file.delete", { path: "/srv/l" });
    expect(dl.ok).toBe(true);
    expect(existsSync(file)).toBe(true);
    expect(run("file.rollback", { snapshot: dl.snapshot }).ok).toBe(true);
    expect(lstatSync(join(root, "srv/l")).isSymbolicLink()).toBe(true);
  });

  test("list shows entries with types, marks denied ones, and refuses a directory outside the roots", () => {
    symlinkSync("/etc/shadow", join(root, "srv/app/link"));
    chmodSync(join(root, "srv/app/config.ini"), 0o600);
    const r = run("file.list", { path: "/srv" }, { rules: [{ roots: ["/srv"], denied: ["/srv/private"] }] });
    expect(r.ok).toBe(true);
    expect(r.entries.map((e: any) => [e.name, e.type, !!e.denied])).toEqual([["app", "dir", false], ["private", "dir", true]]);
    const a = run("file.list", { path: "/srv/app" });
    expect(a.entries.find((e: any) => e.name === "link")).toMatchObject({ type: "link", target: "/etc/shadow" });
    expect(a.entries.find((e: any) => e.name === "config.ini")).toMatchObject({ type: "file", mode: "0600" });
    expect(run("file.list", { path: "/etc" }).code).toBe("denied");
  });
});

const state_ = () => state;
function readdirNames(d: string) {
  return (require("node:fs").readdirSync(d) as string[]).sort();
}

test("Control routes file.* commands to the file handler and lists them on its allow-list", async () => {
  const { ALLOWED_ACTIONS } = await import("../../../../agent/control/process.ts");
  for (const a of ["file.list", "file.read", "file.write", "file.chmod", "file.chown", "file.rename", "file.delete", "file.rollback"]) expect(ALLOWED_ACTIONS.has(a)).toBe(true);
  const h = createFilesHandler({ root, stateDir: state, publicKey, agentId: AGENT });
  const check = createCommandChecker({ key: publicKey, agentId: AGENT, files: h });
  const cmd = signCommand({ v: 1, id: "cmd-route-files", agentId: AGENT, action: "file.read", args: { path: "/srv/app/config.ini", policy: ALLOW }, issuedMs: Date.now(), requestedBy: "t" }, privateKey);
  expect((check({ t: "command", command: cmd }).result as any)).toMatchObject({ ok: true, action: "file.read", path: "/srv/app/config.ini" });
});
