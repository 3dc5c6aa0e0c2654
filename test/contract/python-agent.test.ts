/**
 * "A client written from our docs alone": test/contract/python-agent/agent.py is an agent in
 * Python written from docs/protocol.md only (no look at src/ or agent/). It reproduces the
 * document's test vectors, then enrolls with the real server, opens a session and sends signed
 * and sealed frames of every kind, LZ4 included, over HTTP/1.1 and WebSocket, plus one frame
 * broken for each reject code an outside sender can cause. Each broken frame carries what the
 * document made the agent expect (code, whether the sequence number is consumed); this file
 * checks the server's answers against that, the HTTP statuses against section 7's table, and the
 * stored rows against what the agent says it sent.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { requireComponent } from "../support/ci.ts";
import { startTestServer, type TestServer } from "../support/server.ts";
import { readBlockRows } from "../../src/store/postgres/metric-blocks.ts";

const PYTHON = "/usr/bin/python3";
const AGENT = join(import.meta.dir, "python-agent", "agent.py");
const PROTOCOL = join(import.meta.dir, "..", "..", "docs", "protocol.md");

/** Why the Python side cannot run here, or undefined. */
function pythonMissing(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} does not exist`;
  const r = Bun.spawnSync([PYTHON, "-c", "import cryptography, msgpack, lz4.block"], { stderr: "pipe" });
  return r.exitCode === 0 ? undefined : r.stderr.toString().trim().split("\n").pop();
}
const missing = pythonMissing();
const available = requireComponent(missing === undefined, `${PYTHON} with python3-cryptography, python3-msgpack and python3-lz4 (${missing})`);

/** Section 7's table, as the document prints it: code -> HTTP status. */
const DOC_STATUS = new Map([...readFileSync(PROTOCOL, "utf8").matchAll(/^\| `(\w+)` \| (\d{3})/gm)].map((m) => [m[1]!, Number(m[2])]));
/** Codes the agent cannot cause on its own: they need a saturated, failing or slow server, or a revocation. */
const NEEDS_SERVER_STATE = ["store_rejected", "store_unavailable", "busy", "too_large", "too_slow", "too_many_unauthenticated", "too_many_failures", "revoked_agent"];

interface Desc {
  kind: number;
  batch: number;
  seq: number;
  sealed: boolean;
  lz4: boolean;
  broken?: string;
  expect?: { code: string; consumes: boolean };
  content?: any;
  consumed?: boolean;
  afterCode?: string;
}
interface Ack {
  batch: number | null;
  seq: number | null;
  status?: string;
  code?: string;
  message?: string;
}
type Line = Record<string, any> & { step: string };

async function runPython(args: string[]): Promise<{ lines: Line[]; code: number; stderr: string }> {
  const p = Bun.spawn([PYTHON, AGENT, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const lines = stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as Line);
  return { lines, code, stderr };
}

let s: TestServer;
let vectors: Line[] = [];
let run: Line[] = [];
let agentId = 0;

/** The one line of a step (fails with everything the agent printed if there is none). */
function step(name: string): Line {
  const found = run.filter((l) => l.step === name);
  if (found.length !== 1) throw new Error(`step ${name}: ${found.length} lines; the agent printed:\n${run.map((l) => JSON.stringify(l)).join("\n")}`);
  return found[0]!;
}

/** Each frame a step sent, with what the server answered about it (its ack or reject, matched by batch and seq). */
function answers(line: Line): Array<{ frame: Desc; ack?: Ack; reject?: Ack }> {
  const answer = line.answer ?? line.message;
  return (line.frames as Desc[]).map((frame) => ({
    frame,
    ack: (answer?.acks as Ack[] | undefined)?.find((a) => a.batch === frame.batch && a.seq === frame.seq),
    reject: (answer?.rejects as Ack[] | undefined)?.find((r) => r.batch === frame.batch && r.seq === frame.seq),
  }));
}

/** What a frame got, in words a failing diff shows: `ok`, `dup`, `seen`, a code with the server's message, or nothing. */
function outcome(a: { ack?: Ack; reject?: Ack }): string {
  return a.reject ? `${a.reject.code}: ${a.reject.message}` : a.ack ? a.ack.status! : "no answer";
}

beforeAll(async () => {
  if (!available) return;
  vectors = (await runPython(["vectors", PROTOCOL])).lines;
  s = await startTestServer();
  const r = await runPython(["run", "--server", s.url, "--fingerprint", s.fingerprint, "--token", await s.token(), "--token2", await s.token(), "--hostname", "py-contract"]);
  run = r.lines;
  if (r.code !== 0) throw new Error(`agent.py run exited ${r.code}: ${r.stderr}\n${run.map((l) => JSON.stringify(l)).join("\n")}`);
  agentId = step("enroll").answer.agentId;
  await s.ingest.deps.state.flush(); // heartbeats reach agents.status within about 2 s (3.2)
}, 60_000);

afterAll(async () => {
  await s?.close();
});

describe.skipIf(!available)("a Python agent written from docs/protocol.md alone", () => {
  test("its encoder reproduces the document's test vectors (sections 9.4, 10, 11)", () => {
    expect(vectors.find((l) => l.step === "vector-key")).toMatchObject({ publicKeyBase64: "iojj3XQJ8ZX9UtstPLpdcspnCb8dlBIb83SIAbQPb1w=" });
    const frames = vectors.filter((l) => l.step === "vector");
    // every vector of section 11 and the command of 9.4 is in the document and was compared
    expect(frames.map((l) => [l.name, l.inDoc])).toEqual(
      ["heartbeat.bin", "metrics-2x2.bin", "heartbeat-sealed.bin", "logs.bin", "inventory.bin", "security.bin", "hello.bin", "metrics-lz4.bin", "command-signing-input", "command-signature"].map((n) => [n, true]),
    );
    for (const l of frames.filter((l) => l.name !== "metrics-lz4.bin")) expect({ name: l.name, identical: l.identical }).toEqual({ name: l.name, identical: true });
    // LZ4 output is not unique (section 3.3): the document's frame equals ours once both blocks
    // are expanded, and its signature verifies; byte identity is not required there
    const lz4 = frames.find((l) => l.name === "metrics-lz4.bin")!;
    expect(lz4.identical || (lz4.sameHeaderApartFromBodyLength && lz4.sameRawBody && lz4.docSignatureVerifies)).toBe(true);
  });

  test("TLS: 1.3 only, and a certificate that is not the pinned one is refused", () => {
    expect(step("pin-refused")).toMatchObject({ refused: true });
    expect(step("tls12-refused")).toMatchObject({ refused: true, message: expect.stringContaining("PROTOCOL_VERSION") });
    expect(step("enroll").tls).toBe("TLSv1.3");
    const get = step("stream-plain-get");
    expect({ status: get.status, code: get.answer?.error?.code }).toEqual({ status: 426, code: expect.any(String) });
    expect(get.altSvc).toBe(`h3=":${s.port}"; ma=86400`);
  });

  test("enrollment: answers of section 2", async () => {
    const e = step("enroll");
    expect({ status: e.status, answer: e.answer }).toEqual({ status: 200, answer: { agentId: expect.any(Number), fingerprint: s.fingerprint, commandKey: expect.any(String) } });
    const [row] = await s.db.sql`select hostname, os, arch, agent_version as version, encode(public_key, 'base64') as "publicKey" from agents where id = ${agentId}`;
    expect({ ...row }).toEqual({ hostname: "py-contract", os: "debian 12", arch: "x64", version: "py-0.1.0", publicKey: e.publicKey });
    expect(run.filter((l) => l.step === "enroll-bad-key").map((l) => ({ key: l.key, status: l.status, code: l.answer?.error?.code }))).toEqual([
      { key: "base64url without padding", status: 400, code: "bad_request" },
      { key: "a point of small order (the identity)", status: 400, code: "bad_request" },
    ]);
    expect({ status: step("enroll-token-reused").status, answer: step("enroll-token-reused").answer }).toMatchObject({ status: 401, answer: { error: { code: "bad_token" } } });
    expect({ status: step("enroll-key-in-use").status, answer: step("enroll-key-in-use").answer }).toMatchObject({ status: 409, answer: { error: { code: "key_in_use" } } });
    // section 2: refused enrollments (400, 409) leave the token usable
    const after = step("enroll-token-after-refusals");
    expect({ status: after.status, answer: after.answer }).toMatchObject({ status: 200, answer: { agentId: expect.any(Number) } });
  });

  test("sessions over HTTP: a signed hello opens one; sealed or stale hellos do not (3.5, 6.2)", () => {
    const o = step("session");
    expect({ status: o.status, answer: o.answer }).toEqual({ status: 200, answer: { agentId, session: { id: expect.any(Number), key: expect.any(String), expiresMs: expect.any(Number) } } });
    expect(Buffer.from(o.answer.session.key, "base64").length).toBe(32);
    expect(o.cacheControl).toBe("no-store");
    const sealed = step("session-sealed-hello");
    expect({ status: sealed.status, answer: sealed.answer }).toMatchObject({ status: 401, answer: { error: { code: "bad_signature" } } });
    const stale = step("session-stale-hello");
    expect({ status: stale.status, answer: stale.answer }).toMatchObject({ status: 400, answer: { error: { code: "bad_hello" } } });
  });

  test("good frames, signed and sealed, one or several per request, are acknowledged (3.2, 6.1)", () => {
    for (const name of ["metrics-signed", "metrics-sealed", "several"]) {
      const l = step(name);
      const got = answers(l).map((a) => ({ kind: a.frame.kind, sealed: a.frame.sealed, lz4: a.frame.lz4, outcome: outcome(a) }));
      const want = answers(l).map((a) => ({ kind: a.frame.kind, sealed: a.frame.sealed, lz4: a.frame.lz4, outcome: a.frame.kind === 5 ? "seen" : "ok" }));
      expect({ step: name, status: l.status, got }).toEqual({ step: name, status: 200, got: want });
    }
    const kinds = run.flatMap((l) => (l.frames ?? []) as Desc[]);
    expect(new Set(kinds.filter((f) => !f.broken).map((f) => f.kind))).toEqual(new Set([1, 2, 3, 4, 5, 6]));
    expect(kinds.some((f) => f.lz4 && !f.broken && f.sealed)).toBe(true);
    // LZ4 did make the body smaller
    expect(step("several").lz4.wire).toBeLessThan(step("several").lz4.raw);
  });

  test("a batch sent again under its id is `dup` (3.4)", () => {
    const d = step("duplicate");
    const first = step("metrics-signed").frames[0] as Desc;
    expect({ status: d.status, got: answers(d).map(outcome) }).toEqual({ status: 200, got: ["dup"] });
    expect(d.frames[0].batch).toBe(first.batch);
    expect(d.frames[0].seq).not.toBe(first.seq);
  });

  test("every broken frame gets the code the document names; the good frames beside them are stored (3.6, 7)", () => {
    const m = step("mixed");
    const got = answers(m).map((a) => ({ frame: a.frame.broken ?? "good", outcome: a.reject ? a.reject.code : outcome(a) }));
    const want = answers(m).map((a) => ({ frame: a.frame.broken ?? "good", outcome: a.frame.expect?.code ?? "ok" }));
    // on a mismatch, show the server's messages too
    if (JSON.stringify(got) !== JSON.stringify(want)) expect(answers(m).map((a) => ({ frame: a.frame.broken ?? "good", outcome: outcome(a) }))).toEqual(want);
    expect(got).toEqual(want);
    expect(want.filter((w) => w.frame === "good").length).toBe(2);
    // the HTTP status is the one section 7 gives the first reject
    expect(m.status).toBe(DOC_STATUS.get(m.answer.rejects[0].code));
  });

  test("every broken frame, wherever it was sent, got the code the document names", () => {
    // (the frames that end the reading of a request are answered with batch and seq null: next test)
    const unnamed = ["truncated-header", "bad-magic", "bad-version", "u64-too-large"];
    const broken = run.filter((l) => l.frames && l.step !== "seq-reuse" && !unnamed.includes(l.step)).flatMap((l) => answers(l).filter((a) => a.frame.expect).map((a) => ({ step: l.step, ...a })));
    expect(broken.length).toBeGreaterThan(25);
    expect(broken.map((a) => ({ step: a.step, frame: a.frame.broken, outcome: a.reject?.code === a.frame.expect!.code ? a.reject.code : outcome(a) })))
      .toEqual(broken.map((a) => ({ step: a.step, frame: a.frame.broken, outcome: a.frame.expect!.code })));
  });

  test("requests that end the reading: a cut header, bad magic, bad version, a u64 at 2^53 (3.1, 3.6)", () => {
    for (const name of ["truncated-header", "bad-magic", "bad-version", "u64-too-large"]) {
      const l = step(name);
      const frames = answers(l);
      const broken = frames.findIndex((a) => a.frame.broken);
      const code = frames[broken]!.frame.expect!.code;
      // the frame before is stored, the broken one is named by nothing (batch, seq null), the one after was not read
      expect({ step: name, status: l.status, before: frames.slice(0, broken).map(outcome), rejects: l.answer.rejects.map((r: Ack) => ({ batch: r.batch, seq: r.seq, code: r.code })), after: frames.slice(broken + 1).map(outcome) })
        .toEqual({ step: name, status: DOC_STATUS.get(code), before: ["ok"], rejects: [{ batch: null, seq: null, code }], after: frames.slice(broken + 1).map(() => "no answer") });
    }
    const empty = step("empty");
    expect({ status: empty.status, answer: empty.answer }).toMatchObject({ status: 400, answer: { error: { code: "truncated" } } });
  });

  test("sequence numbers: replays are 409, and a reject consumes its number exactly as section 3.4 says", () => {
    const below = step("replayed-below-window");
    expect({ status: below.status, got: answers(below).map((a) => a.reject?.code) }).toEqual({ status: 409, got: ["replayed_seq"] });
    const reuse = run.filter((l) => l.step === "seq-reuse");
    expect(reuse.length).toBeGreaterThan(20);
    const got = reuse.map((l) => ({ after: l.frames[0].afterCode, broken: l.frames[0].after, outcome: outcome(answers(l)[0]!) }));
    const want = reuse.map((l) => ({ after: l.frames[0].afterCode, broken: l.frames[0].after, outcome: l.frames[0].consumed ? expect.stringMatching(/^replayed_seq: /) : "ok" }));
    expect(got).toEqual(want);
    expect(reuse.some((l) => l.frames[0].consumed)).toBe(true);
    expect(reuse.some((l) => !l.frames[0].consumed)).toBe(true);
  });

  test("every reject code an agent can cause on its own was caused, and answered with section 7's status", () => {
    const causable = [...DOC_STATUS.keys()].filter((c) => !NEEDS_SERVER_STATE.includes(c));
    expect(causable.length).toBeGreaterThan(15);
    const expected = new Set(run.flatMap((l) => ((l.frames ?? []) as Desc[]).map((f) => f.expect?.code)).filter((c) => c !== undefined));
    expect(causable.filter((c) => !expected.has(c))).toEqual([]);
    // a frame's reject alone has its status: each code seen as the only reject of a request
    const alone = run.filter((l) => l.answer?.rejects?.length === 1 && typeof l.status === "number");
    for (const l of alone) expect({ code: l.answer.rejects[0].code, status: l.status }).toEqual({ code: l.answer.rejects[0].code, status: DOC_STATUS.get(l.answer.rejects[0].code) });
  });

  test("WebSocket: challenge, signed hello, welcome with a session, frames acknowledged, 4401 for a wrong nonce (8)", () => {
    const w = step("ws-welcome");
    expect(w.challenge).toEqual({ type: "challenge", nonce: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/) });
    expect(w.welcome).toEqual({ type: "welcome", agentId, session: { id: expect.any(Number), key: "<32 bytes>", expiresMs: expect.any(Number) } });
    const f = step("ws-frames");
    expect(f.message.type).toBe("ack");
    expect(answers(f).map((a) => ({ frame: a.frame.broken ?? "good", outcome: a.reject?.code ?? outcome(a) }))).toEqual(
      answers(f).map((a) => ({ frame: a.frame.broken ?? "good", outcome: a.frame.broken ? "bad_signature" : a.frame.kind === 5 ? "seen" : "ok" })),
    );
    const again = step("ws-hello-again");
    expect(answers(again).map((a) => a.reject?.code)).toEqual(["bad_body"]);
    const nonce = step("ws-wrong-nonce");
    expect({ close: nonce.close, messages: nonce.messages }).toEqual({ close: 4401, messages: [{ type: "error", code: "bad_hello", message: expect.any(String) }] });
  });

  test("what was acknowledged `ok` is stored exactly once, and nothing else: metrics, logs, inventory, security events, heartbeat", async () => {
    // every frame acknowledged ok, over both transports
    const acked = run.filter((l) => l.frames).flatMap((l) => answers(l).filter((a) => a.ack?.status === "ok").map((a) => a.frame));
    const sent = new Map<string, number[]>();
    for (const f of acked.filter((f) => f.kind === 1)) {
      const { series, t, values } = f.content;
      series.forEach((name: string, i: number) => t.forEach((ts: number, j: number) => sent.set(`${name} @ ${ts}`, [values[i][j]])));
    }
    expect(sent.size).toBeGreaterThan(80);
    const names = new Map((await s.db.sql<{ id: number; name: string }[]>`select id::int as id, name from metric_series where agent_id = ${agentId}`).map((r) => [r.id, r.name]));
    const stored = new Map<string, number[]>();
    for (const r of await readBlockRows(s.db.sql, agentId)) {
      const nts = r.tsOff.length;
      r.series.forEach((sid, k) => {
        for (let j = 0; j < nts; j++) {
          if (Number.isNaN(r.vals[k * nts + j]!)) continue;
          const key = `${names.get(sid)} @ ${r.t0 + r.tsOff[j]!}`;
          stored.set(key, [...(stored.get(key) ?? []), r.vals[k * nts + j]!]);
        }
      });
    }
    expect(Object.fromEntries([...stored].sort())).toEqual(Object.fromEntries([...sent].sort()));

    const logs = acked.filter((f) => f.kind === 2).flatMap((f) => f.content);
    expect(logs.length).toBe(3);
    const rows = await s.db.sql`select (extract(epoch from ts) * 1000)::float8 as t, severity, source, message from logs where agent_id = ${agentId} order by ts`;
    expect(rows.map((r) => ({ ...r }))).toEqual([...logs].sort((a, b) => a.t - b.t));

    const inventory = acked.filter((f) => f.kind === 3).map((f) => f.content);
    expect(inventory.length).toBe(1);
    const [cur] = await s.db.sql`select data from inventory_current where agent_id = ${agentId}`;
    expect(cur!.data).toEqual(inventory[0]);

    const events = acked.filter((f) => f.kind === 4).flatMap((f) => f.content);
    expect(events.length).toBe(1);
    const stored_events = await s.db.sql`select (extract(epoch from ts) * 1000)::float8 as ts, type, severity, path, data from security_events where agent_id = ${agentId}`;
    expect(stored_events.map((r) => ({ ...r }))).toEqual(events);

    // the last heartbeat (over WebSocket) is the agent's status
    const heartbeats = run.filter((l) => l.frames).flatMap((l) => answers(l).filter((a) => a.ack?.status === "seen").map((a) => a.frame.content));
    expect(heartbeats.length).toBe(2);
    const [agent] = await s.db.sql`select status from agents where id = ${agentId}`;
    expect(agent!.status).toEqual(heartbeats.at(-1));
  });
});
