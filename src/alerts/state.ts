/**
 * The life of one alert: pending -> firing -> resolved. Pure: the open alert (if any), whether
 * its condition holds this cycle, the time and the rule's for-duration in, the next state and
 * the transitions to store out.
 */

export type AlertState = "pending" | "firing" | "resolved";

export interface OpenAlert {
  id?: number;
  ruleId: number;
  fingerprint: string;
  agentId: number | null;
  subject: string;
  state: "pending" | "firing";
  value: number | null;
  summary: string;
  startedAt: number;
  firedAt: number | null;
  acknowledgedAt: number | null;
}

export interface Transition {
  from: AlertState | null;
  to: AlertState;
}

export type Step =
  | { kind: "none" }
  | { kind: "open"; alert: OpenAlert; transitions: Transition[] }
  | { kind: "update"; alert: OpenAlert; transitions: Transition[] }
  | { kind: "resolve"; alert: OpenAlert; transitions: Transition[] };

/**
 * `obs` is the observation when the condition holds (undefined when it does not). In a
 * maintenance window no new alert opens and a pending one does not fire.
 */
export function step(
  open: OpenAlert | undefined,
  obs: { agentId: number | null; subject: string; value: number | null; summary: string } | undefined,
  ruleId: number,
  fingerprint: string,
  now: number,
  forSeconds: number,
  maintenance: boolean,
): Step {
  if (!open) {
    if (!obs || maintenance) return { kind: "none" };
    const firing = forSeconds === 0;
    const alert: OpenAlert = { ruleId, fingerprint, ...obs, state: firing ? "firing" : "pending", startedAt: now, firedAt: firing ? now : null, acknowledgedAt: null };
    return { kind: "open", alert, transitions: [{ from: null, to: alert.state }] };
  }
  if (!obs) return { kind: "resolve", alert: open, transitions: [{ from: open.state, to: "resolved" }] };
  const next = { ...open, value: obs.value, summary: obs.summary };
  if (open.state === "pending" && !maintenance && now - open.startedAt >= forSeconds * 1000) {
    next.state = "firing";
    next.firedAt = now;
    return { kind: "update", alert: next, transitions: [{ from: "pending", to: "firing" }] };
  }
  return { kind: "update", alert: next, transitions: [] };
}
