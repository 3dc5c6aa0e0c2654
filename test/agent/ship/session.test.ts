import { describe, expect, test } from "bun:test";
import { interpretSessionAnswer, parseSessionGrant } from "../../../agent/ship/session.ts";

const key = Buffer.alloc(32, 7).toString("base64");
const good = { id: 3141592653, key, expiresMs: 1_764_370_000_000 };

describe("parseSessionGrant", () => {
  test("takes a well-formed session, with a key of its own", () => {
    const g = parseSessionGrant(good)!;
    expect(g.id).toBe(3141592653);
    expect(g.expiresMs).toBe(1_764_370_000_000);
    expect(g.key).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(g.key).equals(Buffer.alloc(32, 7))).toBe(true);
    expect(g.key.byteOffset).toBe(0);
    expect(g.key.buffer.byteLength).toBe(32); // not a view into Buffer's shared pool
  });

  test("the id bounds are 1 and 2^32 - 1", () => {
    expect(parseSessionGrant({ ...good, id: 1 })?.id).toBe(1);
    expect(parseSessionGrant({ ...good, id: 0xffffffff })?.id).toBe(0xffffffff);
  });

  const bad: Array<[string, unknown]> = [
    ["absent", undefined],
    ["null", null],
    ["not an object", "session"],
    ["id 0", { ...good, id: 0 }],
    ["id 2^32", { ...good, id: 2 ** 32 }],
    ["negative id", { ...good, id: -5 }],
    ["fractional id", { ...good, id: 1.5 }],
    ["id as a string", { ...good, id: "7" }],
    ["no key", { id: 1, expiresMs: 1 }],
    ["key of 31 bytes", { ...good, key: Buffer.alloc(31, 1).toString("base64") }],
    ["key of 33 bytes", { ...good, key: Buffer.alloc(33, 1).toString("base64") }],
    ["key in base64url", { ...good, key: Buffer.alloc(32, 0xfb).toString("base64url") }],
    ["key with junk", { ...good, key: `${key.slice(0, 40)}!!!=` }],
    ["key as bytes", { ...good, key: [...Buffer.alloc(32)] }],
    ["no expiresMs", { id: 1, key }],
    ["expiresMs as a string", { ...good, expiresMs: "1764370000000" }],
    ["expiresMs NaN", { ...good, expiresMs: Number.NaN }],
  ];
  for (const [what, v] of bad) {
    test(`refuses ${what}`, () => expect(parseSessionGrant(v)).toBeUndefined());
  }
});

describe("interpretSessionAnswer", () => {
  test("200 with agent id and session", () => {
    const a = interpretSessionAnswer("h2", 200, JSON.stringify({ agentId: 17, session: good }));
    expect(a.ok).toBe(true);
    if (a.ok) {
      expect(a.agentId).toBe(17);
      expect(a.session.id).toBe(good.id);
    }
  });

  test("200 with a malformed session is a bad answer, and the message does not quote the body", () => {
    const a = interpretSessionAnswer("h2", 200, JSON.stringify({ agentId: 17, session: { ...good, id: 0 } }));
    expect(a).toMatchObject({ ok: false, status: 200, code: "bad_answer" });
    expect(JSON.stringify(a)).not.toContain(key);
  });

  test("documented errors keep their code and message", () => {
    for (const [status, code] of [[400, "bad_hello"], [401, "bad_signature"], [403, "revoked_agent"], [409, "replayed_seq"], [413, "too_large"]] as const) {
      const a = interpretSessionAnswer("h3", status, JSON.stringify({ error: { code, message: "because" } }));
      expect(a).toEqual({ ok: false, status, code, message: `h3: HTTP ${status} ${code}: because` });
    }
  });

  test("a 404 from an older server, JSON or not", () => {
    expect(interpretSessionAnswer("h2", 404, "Not Found")).toMatchObject({ ok: false, status: 404, code: "http_404" });
    expect(interpretSessionAnswer("h2", 404, '{"error":{"code":"not_found","message":"no route"}}')).toMatchObject({ ok: false, status: 404, code: "not_found" });
  });

  test("garbage never throws", () => {
    expect(interpretSessionAnswer("h2", 200, "\u0000garbage")).toMatchObject({ ok: false, code: "bad_answer" });
    expect(interpretSessionAnswer("h2", 502, "")).toMatchObject({ ok: false, code: "http_502" });
    expect(interpretSessionAnswer("h2", 500, "[1,2]")).toMatchObject({ ok: false, code: "http_500" });
  });
});
