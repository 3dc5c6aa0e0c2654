/** Rule and channel validation, hysteresis and the backoff schedule: pure functions. */
import { expect, test } from "bun:test";
import { stillActive, validateRule, type RuleInput } from "../../src/alerts/rules.ts";
import { validateChannel } from "../../src/alerts/channels.ts";
import { backoffMs } from "../../src/alerts/dispatch.ts";
import { rule } from "./support.ts";

test("each kind needs its parameters", () => {
  const bad: Array<[RuleInput, string]> = [
    [rule({ name: "a", kind: "metric_threshold", params: { op: ">", threshold: 1 } }), "A metric name is required"],
    [rule({ name: "a", kind: "metric_threshold", params: { metric: "cpu.usage_pct", op: "!=" as any, threshold: 1 } }), "The comparison must be one of"],
    [rule({ name: "a", kind: "metric_rate", params: { metric: "x.y", op: ">", threshold: 1 } }), "The window must be"],
    [rule({ name: "a", kind: "metric_absent", params: { metric: "x.y" } }), "The absence time"],
    [rule({ name: "a", kind: "host_offline", params: {} }), "The offline time"],
    [rule({ name: "a", kind: "security_score_drop", params: { drop: 150, window_seconds: 60 } }), "The score drop must be 1-100"],
    [rule({ name: "a", kind: "cis_critical", params: { min_severity: 11 } }), "The minimum severity must be 1-10"],
    [rule({ name: "a", kind: "fim_critical_path", params: { window_seconds: 60, paths: ["etc/ssh"] } }), "absolute path prefix"],
    [rule({ name: "a", kind: "failed_signins", params: { window_seconds: 60, min_count: 0 } }), "The minimum count"],
    [rule({ name: "a", kind: "log_pattern", params: { window_seconds: 60, min_count: 1, pattern: "(" } }), "not a valid regular expression"],
    [rule({ name: "a", kind: "host_offline", params: { offline_seconds: 60 }, scopeTags: ["bad tag"] }), "Invalid tag"],
    [rule({ name: "a", kind: "host_offline", params: { offline_seconds: 60 }, repeatIntervalSeconds: 5 }), "Repeat interval"],
    [rule({ name: "", kind: "host_offline", params: { offline_seconds: 60 } }), "The name must be"],
  ];
  for (const [r, msg] of bad) expect({ kind: r.kind, errs: validateRule(r).join(" ").includes(msg) }).toEqual({ kind: r.kind, errs: true });
  expect(validateRule(rule({ name: "ok", kind: "metric_threshold", params: { metric: "disk.used_pct", op: ">", threshold: 90, clear: 85 } }))).toEqual([]);
});

test("hysteresis: the clear value must be on the safe side; an open alert stays active until past it", () => {
  expect(validateRule(rule({ name: "a", kind: "metric_threshold", params: { metric: "m.x", op: ">", threshold: 90, clear: 95 } }))[0]).toContain("at most 90");
  expect(validateRule(rule({ name: "a", kind: "metric_threshold", params: { metric: "m.x", op: "<", threshold: 10, clear: 5 } }))[0]).toContain("at least 10");
  expect([95, 85, 80, 79.9].map((v) => stillActive(v, ">", 90, 80))).toEqual([true, true, true, false]);
  expect([5, 15, 20, 20.1].map((v) => stillActive(v, "<", 10, 20))).toEqual([true, true, true, false]);
  expect([91, 90].map((v) => stillActive(v, ">", 90, undefined))).toEqual([true, false]);
});

test("channels: what each kind requires; a stored secret may be kept", () => {
  expect(validateChannel("webhook", "w", { url: "https://example.test/h" }, undefined, false)).toEqual(["A signing key is required."]);
  expect(validateChannel("webhook", "w", { url: "https://example.test/h" }, undefined, true)).toEqual([]);
  expect(validateChannel("webhook", "w", { url: "ftp://x" }, "k", false)).toEqual(["The webhook URL must be an http(s) URL."]);
  expect(validateChannel("slack", "s", {}, "not a url", false)).toEqual(["The Slack webhook URL must be an http(s) URL."]);
  expect(validateChannel("pagerduty", "p", {}, "", false)).toEqual(["A routing key is required."]);
  expect(validateChannel("email", "e", { host: "smtp.example.test", port: 587, from: "a@b.test", to: ["c@d.test"] }, undefined, false)).toEqual([]);
  expect(validateChannel("email", "e", { host: "", port: 0, from: "x", to: [] }, undefined, false).length).toBe(4);
  expect(validateChannel("sms", "e", {}, undefined, false)).toEqual(["Unknown channel kind: sms."]);
});

test("backoff doubles from the base up to the maximum", () => {
  const p = { baseMs: 10_000, maxMs: 600_000, maxAttempts: 6 };
  expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffMs(n, p))).toEqual([10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 600_000, 600_000]);
});
