import { expect, test } from "bun:test";
import { COMMAND_ROUTES, commandTarget } from "../../../agent/platform/process.ts";
import { ALLOWED_ACTIONS } from "../../../agent/control/process.ts";
import { MONITOR_ACTIONS } from "../../../agent/monitor/security-monitor.ts";

test("commands are routed by action: cis.scan to Monitor, everything else to Control", () => {
  expect(commandTarget("cis.scan")).toBe("monitor");
  for (const a of ["ping", "cis.remediate", "cis.rollback", "shell.exec", "", "__proto__", "toString", "constructor", undefined, 42]) expect(commandTarget(a)).toBe("control");
});

test("the routing table agrees with each process's allow-list", () => {
  for (const [action, target] of Object.entries(COMMAND_ROUTES)) expect({ action, allowed: (target === "monitor" ? MONITOR_ACTIONS : ALLOWED_ACTIONS).has(action) }).toEqual({ action, allowed: true });
  for (const a of MONITOR_ACTIONS) expect(commandTarget(a)).toBe("monitor");
  for (const a of ALLOWED_ACTIONS) expect(commandTarget(a)).toBe("control");
});
