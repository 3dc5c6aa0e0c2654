/** The start-time agent builds' bookkeeping (the build itself runs in test/e2e/enroll-browser.test.ts). */
import { afterAll, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { TARGETS } from "../../agent/build.ts";
import { AGENT_TARGETS, hostTargetFirst } from "../../src/downloads/targets.ts";
import { distStatus, startAgentBuilds } from "../../src/downloads/agent-builds.ts";
import { tempDirs } from "../support/temp.ts";

const dirs = tempDirs("sm-builds-");
afterAll(() => dirs.removeAll());

test("the server serves exactly the targets the agent build knows", () => {
  expect([...AGENT_TARGETS]).toEqual([...TARGETS]);
});

test("this machine's target is built first", () => {
  const own = `${process.platform}-${process.arch}`;
  const order = hostTargetFirst(AGENT_TARGETS);
  if ((AGENT_TARGETS as readonly string[]).includes(own)) expect(order[0]).toBe(own);
  expect([...order].sort()).toEqual([...AGENT_TARGETS].sort());
});

test("a target is ready only with its binary and its SHA256SUMS line; nothing is queued when builds are off or done", async () => {
  const dist = dirs.make();
  writeFileSync(join(dist, "servermind-agent-linux-x64"), "bin");
  writeFileSync(join(dist, "servermind-agent-linux-arm64"), "bin"); // no checksum line: not ready
  writeFileSync(join(dist, "SHA256SUMS"), `${"a".repeat(64)}  servermind-agent-linux-x64\n${"b".repeat(64)}  servermind-agent-darwin-x64\n`); // no darwin binary
  const states = Object.fromEntries(distStatus(dist).map((s) => [s.target, s.state]));
  expect(states).toEqual({ "linux-x64": "ready", "linux-x64-musl": "missing", "linux-arm64": "missing", "darwin-arm64": "missing", "darwin-x64": "missing", "windows-x64": "missing" });
  const off = startAgentBuilds({ distDir: dist, targets: ["linux-arm64"], enabled: false });
  await off.done;
  expect(off.status().find((s) => s.target === "linux-arm64")!.state).toBe("missing");
  const built = startAgentBuilds({ distDir: dist, targets: ["linux-x64"], enabled: true });
  await built.done; // already there: nothing to build
  expect(built.status().find((s) => s.target === "linux-x64")).toEqual({ target: "linux-x64", state: "ready", sha256: "a".repeat(64) });
});
