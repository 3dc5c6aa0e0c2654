/**
 * The test vectors of docs/protocol.md (one frame of every kind, vectors.ts): (a) the encoder
 * still produces each fixture byte for byte, (b) each decodes to its definition and its trailer
 * verifies with the documented key, (c) the real server gives each the documented answer, and
 * (d) the hex printed in docs/protocol.md is the fixture, so the document cannot drift.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeFrameBody, splitFrames, verifyFrame, verifySealedFrame } from "../../../src/ingest/frame/decode.ts";
import { FLAG_LZ4, FLAG_SESSION, FrameKind, HEADER_SIZE, KIND_NAMES, SIGNATURE_SIZE } from "../../../src/ingest/frame/frame.ts";
import { publicKeyFromRaw } from "../../../src/ingest/agent/directory.ts";
import { Unpackr } from "msgpackr";
import { startTestServer, type TestServer } from "../../support/server.ts";
import { post, requestSession } from "../../support/sim-agent.ts";
import { canonicalJson, commandPayload, signCommand, verifyCommand } from "../../../src/ingest/frame/commands.ts";
import { AGENT_ID, AGENT_KEY, AGENT_PUBLIC_HEX, COMMAND_KEY, COMMAND_VECTOR, encodeVector, FIXTURES, hexLines, SESSION, T, VECTORS } from "./vectors.ts";

const fixture = (file: string) => new Uint8Array(readFileSync(join(FIXTURES, file)));
const publicKey = publicKeyFromRaw(Buffer.from(AGENT_PUBLIC_HEX, "hex"));
const DOC = readFileSync(join(import.meta.dir, "../../../docs/protocol.md"), "utf8");

test("every frame kind has a vector", () => {
  const kinds = new Set(VECTORS.map((v) => v.fields.kind));
  for (const k of Object.keys(KIND_NAMES)) expect(kinds.has(Number(k))).toBe(true);
  expect(VECTORS.some((v) => v.auth === "sealed")).toBe(true);
  expect(VECTORS.some((v) => v.lz4)).toBe(true);
});

test("the documented public key is the one of the example seed", () => {
  const x = createPublicKey(AGENT_KEY).export({ format: "jwk" }).x!;
  expect(Buffer.from(x, "base64url").toString("hex")).toBe(AGENT_PUBLIC_HEX);
});

describe("encoder and decoder", () => {
  for (const v of VECTORS) {
    test(`${v.file}: re-encoded byte for byte; header, body and trailer as defined`, () => {
      const bytes = fixture(v.file);
      expect(Buffer.from(encodeVector(v)).equals(Buffer.from(bytes))).toBe(true); // (a)
      const entries = splitFrames(bytes);
      expect(entries.length).toBe(1);
      const f = entries[0]!.frame!;
      const raw = v.body();
      expect(f.header).toMatchObject({
        version: 1, kind: v.fields.kind, agentId: AGENT_ID, seq: v.fields.seq, batchId: v.fields.batchId,
        createdMs: T, sentMs: T + 123, items: v.fields.items, rawLength: raw.length,
        flags: (v.lz4 ? FLAG_LZ4 : 0) | (v.auth === "sealed" ? FLAG_SESSION : 0),
        session: v.auth === "sealed" ? SESSION.id : 0,
      });
      expect(bytes.length).toBe(HEADER_SIZE + f.header.bodyLength + SIGNATURE_SIZE);
      // (b) the body decodes to the msgpack the definition packs
      const decoded = decodeFrameBody(f.header, f.body);
      expect(decoded.kind).toBe(v.fields.kind);
      const want = new Unpackr({ useRecords: false, mapsAsObjects: true } as any).unpack(raw) as Record<string, unknown>;
      if (decoded.kind === FrameKind.Metrics) {
        expect([...decoded.body.ts]).toEqual([...new Float64Array(new Uint8Array(want.t as Uint8Array).buffer)]);
        expect(decoded.body.names.join("\n")).toBe(want.n as string);
      } else if (decoded.kind === FrameKind.Logs) {
        expect(decoded.body.messages).toEqual(want.m as string[]);
      } else if (decoded.kind === FrameKind.SecurityEvents) {
        expect(decoded.body.events).toEqual(want.e as any);
      } else {
        expect(decoded.body).toEqual(want as any);
      }
      if (v.auth === "sealed") {
        expect(verifySealedFrame(f, SESSION.key)).toBe(true);
        expect(verifyFrame(f, publicKey)).toBe(false);
      } else {
        expect(verifyFrame(f, publicKey)).toBe(true);
        expect(verifySealedFrame(f, SESSION.key)).toBe(false);
      }
    });
  }
});

/** Every `<!-- vector: FILE -->` block of the document: its bytes (each line's hex, up to two spaces of annotation). */
function documentedVectors(): Map<string, string> {
  const out = new Map<string, string>();
  const re = /<!-- vector: ([\w.-]+) -->\s*```[a-z]*\n([\s\S]*?)```/g;
  for (const m of DOC.matchAll(re)) {
    const hex = m[2]!
      .split("\n")
      .map((line) => line.trim().split(/\s{2,}/)[0]!)
      .filter((part) => part.length > 0)
      .map((part) => {
        const tokens = part.split(" ");
        if (!tokens.every((t) => /^[0-9a-f]{2}$/.test(t))) throw new Error(`docs/protocol.md, vector ${m[1]}: "${part}" is not hex bytes`);
        return tokens.join("");
      })
      .join("");
    out.set(m[1]!, hex);
  }
  return out;
}

test("(d) the hex in docs/protocol.md is each fixture, byte for byte", () => {
  const documented = documentedVectors();
  for (const v of VECTORS) {
    expect(documented.has(v.file)).toBe(true);
    expect(documented.get(v.file)).toBe(Buffer.from(fixture(v.file)).toString("hex"));
  }
  // and the plain blocks are laid out as hexLines() prints them (16 bytes a line)
  expect(DOC.includes(hexLines(fixture("logs.bin")))).toBe(true);
});

describe("(c) the real server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
    // agent 42 holds the example key
    await s.db.sql`insert into agents (id, hostname, public_key) overriding system value values (${AGENT_ID}, 'vectors', ${Buffer.from(AGENT_PUBLIC_HEX, "hex")})`;
  }, 60_000);
  afterAll(async () => {
    await s?.close();
  });

  test("each vector, POSTed alone to /api/v1/ingest in sequence order, gets its documented answer", async () => {
    for (const v of [...VECTORS].sort((a, b) => a.fields.seq - b.fields.seq)) {
      const r = await post(s.url, fixture(v.file));
      expect({ file: v.file, status: r.status }).toEqual({ file: v.file, status: v.answer.status });
      if (v.answer.ack) expect(r.body.acks).toEqual([{ batch: v.fields.batchId, seq: v.fields.seq, status: v.answer.ack }]);
      else expect(r.body.rejects!.map((x) => ({ batch: x.batch, seq: x.seq, code: x.code }))).toEqual([{ batch: v.fields.batchId, seq: v.fields.seq, code: v.answer.code! }]);
    }
    // what was stored is what the vectors carry
    const one = async (q: Promise<any[]>) => (await q)[0];
    expect((await one(s.db.sql`select count(*)::int as n from metric_blocks where agent_id = ${AGENT_ID}`)).n).toBeGreaterThan(0);
    expect((await s.db.sql`select severity, source, message from logs where agent_id = ${AGENT_ID} order by ts`).map((r) => ({ ...r }))).toEqual([
      { severity: 6, source: "sshd.service", message: "Accepted publickey for deploy" },
      { severity: 3, source: "kernel", message: "Out of memory: Killed process 4242" },
    ]);
    const ev = await one(s.db.sql`select ts, type, severity, path, data from security_events where agent_id = ${AGENT_ID}`);
    expect({ ...ev, ts: ev.ts.getTime() }).toEqual({ ts: T, type: "fim.modify", severity: 7, path: "/etc/passwd", data: { size: 1856 } });
    expect((await one(s.db.sql`select data from inventory_current where agent_id = ${AGENT_ID}`)).data).toMatchObject({ os: "debian 12", ports: [{ proto: "tcp", port: 22 }] });
    // sent again unchanged, every vector is a replay now
    const again = await post(s.url, fixture("metrics-2x2.bin"));
    expect(again.status).toBe(409);
    expect(again.body.rejects![0]!.code).toBe("replayed_seq");
  });

  test("hello.bin at POST /api/v1/session: refused as bad_hello, its created-at being long past", async () => {
    const r = await requestSession(s.url, { id: AGENT_ID } as any, "http2", fixture("hello.bin"));
    expect(r.status).toBe(400);
    expect(r.body.error!.code).toBe("bad_hello");
    expect(r.body.error!.message).toMatch(/server's clock/);
  });
});

describe("the command vector (docs/protocol.md 9)", () => {
  const signed = signCommand(COMMAND_VECTOR, COMMAND_KEY);
  const commandPublic = Buffer.from(createPublicKey(COMMAND_KEY).export({ format: "jwk" }).x!, "base64url").toString("base64");

  test("the document shows its command public key, signing input (text and hex) and signature", () => {
    const payload = commandPayload(COMMAND_VECTOR);
    expect(DOC.includes(commandPublic)).toBe(true);
    expect(DOC.includes(payload.toString("utf8").split("\n")[1]!)).toBe(true);
    const block = /<!-- command-signing-input -->\s*```[a-z]*\n([\s\S]*?)```/.exec(DOC);
    expect(block).not.toBeNull();
    expect(block![1]!.replace(/\s+/g, "")).toBe(payload.toString("hex"));
    expect(DOC.includes(signed.sig)).toBe(true);
  });

  test("it verifies with the command public key, and one changed character breaks it", () => {
    const opts = { publicKey: createPublicKey(COMMAND_KEY), agentId: AGENT_ID, allow: new Set(["cis.remediate"]), now: T + 1000 };
    expect(verifyCommand(signed, opts).ok).toBe(true);
    expect(verifyCommand({ ...signed, requestedBy: "user:7 Zoe Ñúñez" }, opts).ok).toBe(false);
  });

  test("canonical JSON: the documented rules for keys, numbers and strings", () => {
    expect(canonicalJson({ b: 1, a: [2, { d: null, c: true }], B: "x", é: 0, "10": 1, "9": 2 })).toBe('{"10":1,"9":2,"B":"x","a":[2,{"c":true,"d":null}],"b":1,"é":0}');
    expect(canonicalJson([1e21, 1e-7, 0.1, -0, 100, 1.5e300, 2 ** 53])).toBe("[1e+21,1e-7,0.1,0,100,1.5e+300,9007199254740992]");
    expect(canonicalJson('"\\/\u0001\n\u007fé\u2028😀\ud800')).toBe('"\\"\\\\/\\u0001\\n\u007fé\u2028😀\\ud800"');
    expect(() => canonicalJson({ a: undefined })).toThrow();
    expect(() => canonicalJson(NaN)).toThrow();
  });
});
