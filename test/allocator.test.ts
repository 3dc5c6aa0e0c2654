/**
 * The server runs with mimalloc's purging off (src/allocator.ts): started without the setting, it
 * restarts itself with it, in the same process, with the same arguments; an operator's own value
 * is kept. Checked on the plan, on a small program that imports the boot module, and on the real
 * server as `npm start` runs it (its environment read from /proc).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PURGE_DELAY_NEVER, PURGE_DELAY_VAR, reexecPlan, retainFreedMemory } from "../src/allocator.ts";
import { startServerProcess } from "./support/server-process.ts";

const proc = { platform: "linux", execPath: "/usr/bin/bun", main: "/srv/src/main.ts", execArgv: ["--smol"], argv: ["/usr/bin/bun", "/srv/src/main.ts", "a", "b c"] };

test("the plan: bun with its flags, the script and its arguments; a compiled binary with its arguments; the rest of the environment kept", () => {
  const plan = reexecPlan({ PATH: "/bin", SERVERMIND_PORT: "8443", EMPTY: "" }, proc)!;
  expect(plan.path).toBe("/usr/bin/bun");
  expect(plan.args).toEqual(["/usr/bin/bun", "--smol", "/srv/src/main.ts", "a", "b c"]);
  expect(plan.env).toEqual({ PATH: "/bin", SERVERMIND_PORT: "8443", EMPTY: "", [PURGE_DELAY_VAR]: PURGE_DELAY_NEVER });
  const compiled = reexecPlan({}, { ...proc, execPath: "/usr/bin/servermind-server", main: "/$bunfs/root/servermind-server", execArgv: [], argv: ["bun", "/$bunfs/root/servermind-server", "--x"] })!;
  expect(compiled.args).toEqual(["/usr/bin/servermind-server", "--x"]);
});

test("no restart once the variable is set (whatever the operator chose, even empty), nor on Windows", () => {
  expect(reexecPlan({ [PURGE_DELAY_VAR]: "-1" }, proc)).toBeUndefined();
  expect(reexecPlan({ [PURGE_DELAY_VAR]: "10" }, proc)).toBeUndefined();
  expect(reexecPlan({ [PURGE_DELAY_VAR]: "" }, proc)).toBeUndefined();
  expect(reexecPlan({}, { ...proc, platform: "win32" })).toBeUndefined();
});

test("a restart that fails (the binary gone under an upgrade) is a warning, not a crash; nothing is tried when the variable is set", () => {
  const warnings: string[] = [];
  const calls: string[][] = [];
  const failing = (path: string, args: string[]): never => {
    calls.push([path, ...args]);
    throw Object.assign(new Error(`ENOENT: no such file or directory, execve '${path}'`), { code: "ENOENT" });
  };
  retainFreedMemory({ PATH: "/bin" }, failing, (l) => warnings.push(l));
  expect(calls).toHaveLength(1);
  expect(warnings).toEqual([expect.stringContaining(`warning: could not restart with ${PURGE_DELAY_VAR}=${PURGE_DELAY_NEVER} (ENOENT`)]);
  retainFreedMemory({ [PURGE_DELAY_VAR]: "-1" }, failing, (l) => warnings.push(l));
  expect(calls).toHaveLength(1);
  expect(warnings).toHaveLength(1);
});

test("a program importing the boot module first runs once, in the same process, with the setting and its arguments", () => {
  const dir = mkdtempSync(join(tmpdir(), "servermind-alloc-"));
  try {
    const script = join(dir, "probe.ts");
    writeFileSync(join(dir, "later.ts"), `console.log("later evaluated");\n`);
    writeFileSync(script, `import ${JSON.stringify(join(import.meta.dir, "../src/allocator-boot.ts"))};\nimport "./later.ts";\nconsole.log(JSON.stringify({ pid: process.pid, v: process.env.${PURGE_DELAY_VAR}, args: process.argv.slice(2), ppid: process.ppid }));\n`);
    const env = { ...process.env };
    delete env[PURGE_DELAY_VAR];
    const run = Bun.spawnSync([process.execPath, script, "one", "two words"], { env, stdout: "pipe", stderr: "pipe" });
    expect(run.exitCode).toBe(0);
    const lines = run.stdout.toString().trim().split("\n");
    // the module after the boot module was evaluated once: the restart happened before it
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe("later evaluated");
    const out = JSON.parse(lines[1]!);
    expect(out).toEqual({ pid: run.pid, v: PURGE_DELAY_NEVER, args: ["one", "two words"], ppid: process.pid });

    const kept = Bun.spawnSync([process.execPath, script], { env: { ...env, [PURGE_DELAY_VAR]: "10" }, stdout: "pipe" });
    expect(JSON.parse(kept.stdout.toString().trim().split("\n")[1]!).v).toBe("10");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the server as npm start runs it has the setting in its environment, in the process that was started", async () => {
  const s = await startServerProcess();
  try {
    const environ = readFileSync(`/proc/${s.pid}/environ`, "utf8").split("\0");
    expect(environ).toContain(`${PURGE_DELAY_VAR}=${PURGE_DELAY_NEVER}`);
    expect(readFileSync(`/proc/${s.pid}/cmdline`, "utf8").split("\0").some((a) => a.endsWith("/src/main.ts"))).toBe(true);
  } finally {
    await s.stop();
  }
});
