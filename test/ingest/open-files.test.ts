/**
 * The open-files limit (issue #13): the server warns at start when `ulimit -n` is below what its
 * settings need, and at the limit it stops accepting (logged once) instead of spinning, keeps the
 * agents it holds, and accepts again once clients go. The server runs as its own process under
 * a small limit; its CPU time comes from /proc.
 */
import { expect, test } from "bun:test";
import net from "node:net";
import { startServerProcess } from "../support/server-process.ts";
import { enroll, metricsFrame, openStream } from "../support/sim-agent.ts";
import { createActivationToken } from "../../src/ingest/agent/enroll.ts";
import { cpuSeconds } from "../../bench/support.ts";
import { fileLimit, fileLimitWarning, filesNeeded } from "../../src/http/open-files.ts";
import { loadConfig } from "../../src/config.ts";

test("the start check compares the open-files limit with what SERVERMIND_MAX_AGENTS needs", () => {
  const limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
  expect(fileLimit(limits)).toBe(1024);
  expect(fileLimit("Max open files            unlimited            unlimited            files\n")).toBe(Infinity);
  const config = loadConfig({ SERVERMIND_MAX_AGENTS: "1000" });
  expect(filesNeeded(config)).toBeGreaterThan(1000);
  expect(fileLimitWarning(config, 1024)).toContain("the open-files limit is 1024, below the");
  expect(fileLimitWarning(config, 1024)).toContain("SERVERMIND_MAX_AGENTS=1000");
  expect(fileLimitWarning(config, 20_000)).toBeUndefined();
  expect(fileLimitWarning(config, undefined)).toBeUndefined();
});

test("under ulimit -n 256 with 500 clients: warned at start, refuses cleanly, logs once, does not spin, keeps its agent, recovers", async () => {
  const s = await startServerProcess({}, { ulimitFiles: 256 });
  const flood: net.Socket[] = [];
  try {
    expect(s.output()).toContain("warning: the open-files limit is 256, below the");
    const a = await enroll(s.url, (await createActivationToken(s.db.sql, { createdBy: "test" })).token, "held-agent");
    const st = await openStream(s.url, a);
    expect((await st.send(metricsFrame(a, 5, 5, Date.now()))).acks[0].status).toBe("ok");

    for (let i = 0; i < 500; i++) {
      const c = net.connect(s.port, "127.0.0.1");
      c.on("error", () => {}); // reset when the server stops listening
      flood.push(c);
      if (i % 50 === 0) await Bun.sleep(20);
    }
    for (let i = 0; i < 100 && !s.output().includes("not accepting new connections"); i++) await Bun.sleep(50);
    expect(s.output()).toContain("not accepting new connections");

    const cpu0 = cpuSeconds(s.pid);
    await Bun.sleep(3000);
    const cores = (cpuSeconds(s.pid) - cpu0) / 3;
    expect(cores).toBeLessThan(0.2); // it spun about half a core before
    // a new connection is refused at once rather than left hanging
    const refused = await new Promise<string>((resolve) => {
      const c = net.connect(s.port, "127.0.0.1", () => resolve("connected"));
      c.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      setTimeout(() => resolve("hung"), 3000);
    });
    expect(["ECONNREFUSED", "ECONNRESET"]).toContain(refused);
    // the agent held before keeps its stream
    expect((await st.send(metricsFrame(a, 5, 5, Date.now()))).acks[0].status).toBe("ok");

    for (const c of flood) c.destroy();
    for (let i = 0; i < 100 && !s.output().includes("accepting connections again"); i++) await Bun.sleep(50);
    expect(s.output()).toContain("accepting connections again");
    const r = await fetch(`${s.url}/healthz`, { tls: { rejectUnauthorized: false } });
    expect(r.status).toBe(200);
    expect(s.output().match(/not accepting new connections/g)!.length).toBe(1);
    st.close();
  } finally {
    for (const c of flood) c.destroy();
    await s.stop();
  }
}, 90_000);
