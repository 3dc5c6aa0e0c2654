import { expect, test } from "bun:test";
import { highlightParts, highlightTerms, levelLabel, likePattern, LogQueryError, parseLogQuery, type LogQuery } from "../../src/logs/log-query.ts";

const term = (text: string, phrase = false): LogQuery => ({ kind: "term", text, phrase });

test("words, phrases, implicit and explicit AND, OR binding looser than AND", () => {
  expect(parseLogQuery("disk")).toEqual(term("disk"));
  expect(parseLogQuery('"disk full"')).toEqual(term("disk full", true));
  expect(parseLogQuery("disk full")).toEqual({ kind: "and", items: [term("disk"), term("full")] });
  expect(parseLogQuery("disk AND full")).toEqual({ kind: "and", items: [term("disk"), term("full")] });
  expect(parseLogQuery("a b OR c")).toEqual({ kind: "or", items: [{ kind: "and", items: [term("a"), term("b")] }, term("c")] });
  expect(parseLogQuery("a (b OR c)")).toEqual({ kind: "and", items: [term("a"), { kind: "or", items: [term("b"), term("c")] }] });
  // lower-case operators are words
  expect(parseLogQuery("or and not")).toEqual({ kind: "and", items: [term("or"), term("and"), term("not")] });
});

test("NOT and -word negate; a dash inside a word or a bare dash is text", () => {
  expect(parseLogQuery("NOT cron")).toEqual({ kind: "not", expr: term("cron") });
  expect(parseLogQuery("error -cron")).toEqual({ kind: "and", items: [term("error"), { kind: "not", expr: term("cron") }] });
  expect(parseLogQuery("-(a OR b)")).toEqual({ kind: "not", expr: { kind: "or", items: [term("a"), term("b")] } });
  expect(parseLogQuery("web-1")).toEqual(term("web-1"));
  expect(parseLogQuery("a - b")).toEqual({ kind: "and", items: [term("a"), term("-"), term("b")] });
});

test("fields: host, unit, tag, level (this level and the more severe ones)", () => {
  expect(parseLogQuery("host:web-1")).toEqual({ kind: "field", field: "host", value: "web-1" });
  expect(parseLogQuery("UNIT:sshd.service")).toEqual({ kind: "field", field: "unit", value: "sshd.service" });
  expect(parseLogQuery('unit:"my unit"')).toEqual({ kind: "field", field: "unit", value: "my unit" });
  expect(parseLogQuery("tag:env=prod")).toEqual({ kind: "field", field: "tag", value: "env=prod" });
  expect(parseLogQuery("level:err")).toEqual({ kind: "level", severity: 3 });
  expect(parseLogQuery("level:warning")).toEqual({ kind: "level", severity: 4 });
  expect(parseLogQuery("level:ERROR")).toEqual({ kind: "level", severity: 3 });
  expect(parseLogQuery("level:7")).toEqual({ kind: "level", severity: 7 });
  // other "x:y" words stay words (times, key:value text in messages)
  expect(parseLogQuery("12:30:01")).toEqual(term("12:30:01"));
  expect(parseLogQuery("port:22")).toEqual(term("port:22"));
  expect(levelLabel(4)).toBe("warning or more severe");
  expect(levelLabel(0)).toBe("emerg only");
});

test("malformed queries raise LogQueryError with a message for the form", () => {
  const cases: Array<[string, RegExp]> = [
    ["", /empty/],
    ["   ", /empty/],
    ['"disk full', /never closed/],
    ['""', /hold nothing/],
    ["(a OR b", /never closed/],
    ["a)", /no matching/],
    ["()", /hold nothing/],
    ["a OR", /needs a term after/],
    ["OR a", /needs a term before/],
    ["a AND", /needs a term after/],
    ["NOT", /needs a term after/],
    ["source:sshd", /Unknown field "source:"/],
    ["severity:err", /Unknown field/],
    ["level:loud", /not a level/],
    ["host:", /needs a value/],
    ["x".repeat(501), /at most 500/],
    ["(".repeat(20) + "a" + ")".repeat(20), /nests deeper/],
    [Array.from({ length: 40 }, (_, i) => `w${i}`).join(" "), /more than 32 terms/],
  ];
  for (const [q, re] of cases) {
    let err: unknown;
    try {
      parseLogQuery(q);
    } catch (e) {
      err = e;
    }
    expect(err, q).toBeInstanceOf(LogQueryError);
    expect((err as Error).message, q).toMatch(re);
  }
});

test("property: random strings either parse or raise LogQueryError, never anything else", () => {
  const alphabet = ['"', "(", ")", " ", "-", ":", "a", "b", "OR", "AND", "NOT", "host:", "level:", "unit:", "tag:", "source:", "\\", "%", "_", "*", "é", "\u0000", "\t", "err", "x y"];
  let seed = 17;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let parsed = 0;
  let refused = 0;
  const deadline = Date.now() + 5000;
  for (let i = 0; i < 20000 && Date.now() < deadline; i++) {
    const len = rand(24);
    let q = "";
    for (let k = 0; k < len; k++) q += rand(4) === 0 ? String.fromCharCode(rand(0x3000)) : alphabet[rand(alphabet.length)]!;
    try {
      const ast = parseLogQuery(q);
      expect(typeof ast.kind).toBe("string");
      parsed++;
    } catch (e) {
      if (!(e instanceof LogQueryError)) throw new Error(`query ${JSON.stringify(q)} threw ${String(e)}`);
      expect((e as Error).message.length).toBeGreaterThan(5);
      refused++;
    }
  }
  // the generator reaches both outcomes
  expect(parsed).toBeGreaterThan(100);
  expect(refused).toBeGreaterThan(100);
});

test("LIKE patterns escape %, _ and backslash; * is a wildcard only in names", () => {
  expect(likePattern("50%_a\\b", { contains: true })).toBe("%50\\%\\_a\\\\b%");
  expect(likePattern("web-*", { contains: false, wildcard: true })).toBe("web-%");
  expect(likePattern("a*", { contains: true })).toBe("%a*%");
});

test("highlighting marks the positive terms only, case-insensitively, as text parts", () => {
  const q = parseLogQuery('Disk "no space" -cron');
  expect(highlightTerms(q)).toEqual(["no space", "disk"]);
  expect(highlightParts("DISK has no space; disk <b>", highlightTerms(q))).toEqual([
    { text: "DISK", hit: true }, { text: " has ", hit: false }, { text: "no space", hit: true }, { text: "; ", hit: false },
    { text: "disk", hit: true }, { text: " <b>", hit: false },
  ]);
  expect(highlightParts("plain", [])).toEqual([{ text: "plain", hit: false }]);
});
