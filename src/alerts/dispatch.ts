/**
 * Sends the queued notifications that are due, records every attempt (alert_delivery_attempts)
 * and retries failures with exponential backoff: the n-th failure waits base * 2^(n-1), at
 * most `maxMs`; after `maxAttempts` the notification is marked failed.
 */
import type { Sql } from "postgres";
import type { SecretBox } from "../auth/secret-box.ts";
import { channelForSending, sendThrough, type SendResult } from "./channels.ts";
import type { NotificationPayload } from "./payload.ts";

export interface RetryPolicy {
  baseMs: number;
  maxMs: number;
  maxAttempts: number;
}

export const DEFAULT_RETRY: RetryPolicy = { baseMs: 10_000, maxMs: 600_000, maxAttempts: 6 };

export function backoffMs(failures: number, p: RetryPolicy): number {
  return Math.min(p.maxMs, p.baseMs * 2 ** Math.max(0, failures - 1));
}

/** Sends up to `limit` due notifications; returns how many were attempted. */
export async function dispatchDue(sql: Sql, box: SecretBox, policy: RetryPolicy = DEFAULT_RETRY, limit = 50): Promise<number> {
  // claimed for five minutes (pushed forward), so a node that takes over meanwhile does not send them too
  const due = await sql`
    update alert_notifications n set next_attempt_at = now() + interval '5 minutes'
    from (select id from alert_notifications where status = 'pending' and next_attempt_at <= now()
          order by next_attempt_at, id limit ${limit} for update skip locked) d
    where n.id = d.id
    returning n.id, n.channel_id, n.payload, n.attempts`;
  await Promise.all(due.map(async (n) => {
    const attempt = n.attempts + 1;
    const t0 = performance.now();
    let r: SendResult;
    try {
      const ch = await channelForSending(sql, box, Number(n.channel_id));
      r = !ch ? { ok: false, error: "channel deleted" } : !ch.channel.enabled ? { ok: false, error: "channel disabled" } : await sendThrough(ch.channel, ch.secret, n.payload as NotificationPayload);
    } catch (e) {
      r = { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    const ms = Math.round(performance.now() - t0);
    const giveUp = !r.ok && attempt >= policy.maxAttempts;
    await sql.begin(async (tx) => {
      await tx`insert into alert_delivery_attempts (notification_id, attempt, ok, status_code, error, duration_ms)
        values (${n.id}, ${attempt}, ${r.ok}, ${r.status ?? null}, ${r.error?.slice(0, 500) ?? null}, ${ms})`;
      await tx`update alert_notifications set attempts = ${attempt},
          status = ${r.ok ? "sent" : giveUp ? "failed" : "pending"},
          sent_at = ${r.ok ? sql`now()` : null},
          last_error = ${r.ok ? null : r.error?.slice(0, 500) ?? "failed"},
          next_attempt_at = now() + make_interval(secs => ${r.ok || giveUp ? 0 : backoffMs(attempt, policy) / 1000})
        where id = ${n.id}`;
    });
  }));
  return due.length;
}

/** A test notification through one channel, now, recorded like any other (one attempt, no retry). */
export async function sendTestNotification(sql: Sql, box: SecretBox, channelId: number, by: string): Promise<SendResult> {
  const now = Date.now();
  const payload: NotificationPayload = {
    version: 1, group_key: "test", status: "firing", rule: { id: 0, name: "Test notification", kind: "test", severity: "info" },
    group_labels: {}, title: `[TEST] ServerMind test notification from ${by}`, counts: { firing: 1, resolved: 0 },
    alerts: [{
      status: "firing", fingerprint: "test", subject: "test", summary: `A test sent by ${by} from the console`, value: null, labels: {},
      started_at: new Date(now).toISOString(), fired_at: new Date(now).toISOString(), resolved_at: null, acknowledged: false,
    }],
  };
  const [n] = await sql`insert into alert_notifications (group_key, channel_id, payload, next_attempt_at) values ('test', ${channelId}, ${sql.json(payload as any)}, 'infinity') returning id`;
  const t0 = performance.now();
  let r: SendResult;
  try {
    const ch = await channelForSending(sql, box, channelId);
    r = ch ? await sendThrough(ch.channel, ch.secret, payload, now) : { ok: false, error: "channel deleted" };
  } catch (e) {
    r = { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
  await sql.begin(async (tx) => {
    await tx`insert into alert_delivery_attempts (notification_id, attempt, ok, status_code, error, duration_ms)
      values (${n!.id}, 1, ${r.ok}, ${r.status ?? null}, ${r.error?.slice(0, 500) ?? null}, ${Math.round(performance.now() - t0)})`;
    await tx`update alert_notifications set attempts = 1, status = ${r.ok ? "sent" : "failed"}, sent_at = ${r.ok ? new Date() : null},
      last_error = ${r.ok ? null : r.error?.slice(0, 500) ?? "failed"} where id = ${n!.id}`;
  });
  return r;
}
