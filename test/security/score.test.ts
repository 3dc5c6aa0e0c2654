import { describe, expect, test } from "bun:test";
import { computeScore, WEIGHTS, type ScoreInputs } from "../../src/security/score.ts";

const now = Date.parse("2026-11-28T12:00:00Z");
const perfect: ScoreInputs = {
  cis: [
    { control_id: "a", status: "pass", severity: 5, category: "file-permissions" },
    { control_id: "b", status: "pass", severity: 8, category: "ssh" },
  ],
  fim: [],
  updates: { security: 0, other: 0 },
  ports: [{ proto: "tcp", address: "0.0.0.0", port: 22 }, { proto: "tcp", address: "127.0.0.1", port: 5432 }],
  authFailures: 0,
  agent: { lastSeenMs: now - 10_000, processes: { collector: "ok", monitor: "ok", control: "ok", platform: "ok" } },
  nowMs: now,
};

describe("security score formula (docs/security-score.md)", () => {
  test("weights sum to 100", () => expect(Object.values(WEIGHTS).reduce((a, b) => a + b, 0)).toBe(100));

  test("a clean host scores 100 except for one exposed port", () => {
    const s = computeScore(perfect);
    expect(s.categories.network.score).toBe(97); // ssh on 0.0.0.0: -3; loopback postgres not counted
    expect(s.score).toBe(Math.round((30 * 100 + 15 * 100 + 15 * 100 + 15 * 97 + 15 * 100 + 10 * 100) / 100));
    expect(s.unknown).toEqual([]);
  });

  test("each category reacts as documented", () => {
    const s = computeScore({
      ...perfect,
      cis: [
        { control_id: "a", status: "pass", severity: 2, category: "file-permissions" },
        { control_id: "c", status: "fail", severity: 6, category: "kernel-modules" },
        { control_id: "d", status: "notapplicable", severity: 9, category: "cron" },
        { control_id: "b", status: "fail", severity: 8, category: "ssh" },
      ],
      fim: [{ severity: 8 }, { severity: 5 }, { severity: 2 }],
      updates: { security: 3, other: 12 },
      ports: [{ proto: "tcp", address: "0.0.0.0", port: 23 }, { proto: "tcp6", address: "::", port: 23 }, { proto: "tcp", address: "0.0.0.0", port: 443 }],
      authFailures: 55,
      agent: { lastSeenMs: now - 600_000, processes: { collector: "ok", monitor: "crashed" } },
    });
    expect(s.categories.config.score).toBe(25); // 2 of 8 severity points pass
    expect(s.categories.integrity.score).toBe(100 - 15 - 5 - 1);
    expect(s.categories.patches.score).toBe(100 - 30); // other (non-security) updates are not scored
    expect(s.categories.network.score).toBe(100 - 15 - 3); // telnet counted once across v4/v6
    expect(s.categories.authentication.score).toBe(0); // 0 % pass, minus 10 for 55 failures
    expect(s.categories.agent.score).toBe(60 - 20);
  });

  test("missing data counts as 50 and is flagged", () => {
    const s = computeScore({ ...perfect, cis: [], updates: null, ports: null });
    expect(s.unknown.sort()).toEqual(["authentication", "config", "network", "patches"]);
    expect(s.score).toBe(Math.round((30 * 50 + 15 * 100 + 15 * 50 + 15 * 50 + 15 * 50 + 10 * 100) / 100));
  });
  test("inventory ports without an address or proto do not break the score; a missing address counts as exposed", () => {
    const ports = [{ proto: "tcp", port: 443 }, { port: 22 }, { proto: "tcp", address: "127.0.0.1", port: 6379 }, null] as unknown as ScoreInputs["ports"];
    const s = computeScore({ ...perfect, ports });
    expect(s.categories.network).toMatchObject({ score: 97, detail: "1 ports reachable from the network, 0 of them risky (none)" });
  });
});
