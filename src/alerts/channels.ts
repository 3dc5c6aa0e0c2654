/**
 * Notification channels: their configuration (secrets sealed with the console's SecretBox),
 * and sending one notification document through one channel. No retries here: dispatch.ts
 * records each attempt and retries with backoff.
 */
import type { Sql } from "postgres";
import nodemailer from "nodemailer";
import { isIP } from "node:net";
import type { SecretBox } from "../auth/secret-box.ts";
import type { NotificationPayload } from "./payload.ts";
import { checkDestination, refusedLiteral } from "./destinations.ts";
import { emailMessage, pagerDutyBody, SIGNATURE_HEADER, slackBody, webhookSignature } from "./formats.ts";

export const CHANNEL_KINDS = ["email", "webhook", "slack", "pagerduty"] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

export interface ChannelConfig {
  /** email */
  host?: string;
  port?: number;
  from?: string;
  to?: string[];
  username?: string;
  /** email: PEM of the CA that signs the SMTP server's certificate, when not a public one */
  tls_ca?: string;
  /** webhook, pagerduty (default Events API v2 endpoint) */
  url?: string;
}

export interface Channel {
  id: number;
  name: string;
  kind: ChannelKind;
  config: ChannelConfig;
  /** whether a secret is stored (never the secret itself) */
  hasSecret: boolean;
  enabled: boolean;
}

export const PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue";
const TIMEOUT_MS = 10_000;

function channelFromRow(r: Record<string, any>): Channel {
  return { id: Number(r.id), name: r.name, kind: r.kind, config: r.config ?? {}, hasSecret: r.secret !== null, enabled: r.enabled };
}

/** Problems with a channel's settings; `secret` is the new secret, undefined to keep the stored one. */
export function validateChannel(kind: string, name: string, c: ChannelConfig, secret: string | undefined, hasStored: boolean): string[] {
  const errs: string[] = [];
  const haveSecret = (secret !== undefined && secret !== "") || hasStored;
  if (!/^\S.{0,79}$/.test(name)) errs.push("The name must be 1-80 characters.");
  const url = (u: string | undefined, what: string) => {
    try {
      const x = new URL(u ?? "");
      if (x.protocol !== "https:" && x.protocol !== "http:") throw new Error();
      const refused = refusedLiteral(x.hostname);
      if (refused) errs.push(`${what} is refused: ${refused}.`);
    } catch {
      errs.push(`${what} must be an http(s) URL.`);
    }
  };
  switch (kind) {
    case "email":
      if (!c.host || !/^[A-Za-z0-9.:-]{1,253}$/.test(c.host)) errs.push("An SMTP host is required.");
      else if (refusedLiteral(c.host)) errs.push(`The SMTP host is refused: ${refusedLiteral(c.host)}.`);
      if (!Number.isInteger(c.port) || c.port! < 1 || c.port! > 65535) errs.push("The SMTP port must be 1-65535.");
      if (!c.from || !/^[^\s@]+@[^\s@]+$/.test(c.from)) errs.push("A sender address is required.");
      if (!c.to?.length || c.to.some((t) => !/^[^\s@]+@[^\s@]+$/.test(t))) errs.push("At least one valid recipient is required.");
      if (c.tls_ca !== undefined && c.tls_ca !== "" && !c.tls_ca.includes("-----BEGIN CERTIFICATE-----")) errs.push("The CA must be a PEM certificate.");
      break;
    case "webhook":
      url(c.url, "The webhook URL");
      if (!haveSecret) errs.push("A signing key is required.");
      break;
    case "slack":
      if (!haveSecret) errs.push("The Slack webhook URL is required.");
      else if (secret) url(secret, "The Slack webhook URL");
      break;
    case "pagerduty":
      if (c.url) url(c.url, "The Events API URL");
      if (!haveSecret) errs.push("A routing key is required.");
      break;
    default:
      errs.push(`Unknown channel kind: ${kind}.`);
  }
  return errs;
}

export async function listChannels(sql: Sql): Promise<Channel[]> {
  return (await sql`select id, name, kind, config, secret, enabled from notification_channels order by name`).map(channelFromRow);
}

export async function getChannel(sql: Sql, id: number): Promise<Channel | undefined> {
  const [r] = await sql`select id, name, kind, config, secret, enabled from notification_channels where id = ${id}`;
  return r && channelFromRow(r);
}

export async function createChannel(sql: Sql, box: SecretBox, c: { name: string; kind: ChannelKind; config: ChannelConfig; secret?: string; enabled: boolean }, by: string): Promise<number> {
  const sealed = c.secret ? box.seal(c.secret) : null;
  const [r] = await sql`
    insert into notification_channels (name, kind, config, secret, enabled, created_by)
    values (${c.name}, ${c.kind}, ${sql.json(c.config as any)}, ${sealed}, ${c.enabled}, ${by}) returning id`;
  return Number(r!.id);
}

/** Updates a channel; an empty or absent secret keeps the stored one. */
export async function updateChannel(sql: Sql, box: SecretBox, id: number, c: { name: string; config: ChannelConfig; secret?: string; enabled: boolean }): Promise<boolean> {
  const sealed = c.secret ? box.seal(c.secret) : null;
  const r = await sql`
    update notification_channels set name = ${c.name}, config = ${sql.json(c.config as any)}, enabled = ${c.enabled},
      secret = coalesce(${sealed}, secret), updated_at = now()
    where id = ${id}`;
  return r.count === 1;
}

export async function deleteChannel(sql: Sql, id: number): Promise<string | undefined> {
  const [r] = await sql`delete from notification_channels where id = ${id} returning name`;
  return r?.name;
}

/** The channel with its secret opened, for sending only. */
export async function channelForSending(sql: Sql, box: SecretBox, id: number): Promise<{ channel: Channel; secret: string | undefined } | undefined> {
  const [r] = await sql`select id, name, kind, config, secret, enabled from notification_channels where id = ${id}`;
  if (!r) return undefined;
  return { channel: channelFromRow(r), secret: r.secret === null ? undefined : box.open(r.secret) };
}

export interface SendResult {
  ok: boolean;
  status?: number;
  error?: string;
}

async function post(url: string, body: string, headers: Record<string, string>): Promise<SendResult> {
  try {
    const refused = await checkDestination(new URL(url).hostname);
    if (refused) return { ok: false, error: `destination refused: ${refused}` };
    const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/json", "user-agent": "ServerMind-Alerts/1", ...headers }, signal: AbortSignal.timeout(TIMEOUT_MS), redirect: "manual" });
    const text = res.ok ? "" : (await res.text().catch(() => "")).slice(0, 200);
    await res.body?.cancel().catch(() => {});
    return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}${text ? `: ${text}` : ""}` };
  } catch (e) {
    return { ok: false, error: e instanceof Error ? e.message : String(e) };
  }
}

/** Sends one notification through one channel. */
export async function sendThrough(channel: Channel, secret: string | undefined, p: NotificationPayload, now = Date.now()): Promise<SendResult> {
  const c = channel.config;
  switch (channel.kind) {
    case "webhook": {
      const body = JSON.stringify(p);
      return post(c.url!, body, { [SIGNATURE_HEADER]: webhookSignature(secret ?? "", Math.floor(now / 1000), body) });
    }
    case "slack":
      return post(secret!, JSON.stringify(slackBody(p)), {});
    case "pagerduty":
      return post(c.url || PAGERDUTY_URL, JSON.stringify(pagerDutyBody(p, secret ?? "")), {});
    case "email":
      return sendEmail(c, secret, p);
  }
}

/** SMTP with STARTTLS required: the message is never sent in the clear. */
async function sendEmail(c: ChannelConfig, password: string | undefined, p: NotificationPayload): Promise<SendResult> {
  const refused = await checkDestination(c.host ?? "");
  if (refused) return { ok: false, error: `destination refused: ${refused}` };
  const transport = nodemailer.createTransport({
    host: c.host,
    port: c.port,
    secure: false,
    requireTLS: true,
    auth: c.username ? { user: c.username, pass: password ?? "" } : undefined,
    // a host name is also the TLS server name (SNI); an IP address is checked against the certificate's IP entries
    tls: { minVersion: "TLSv1.2", ...(c.tls_ca ? { ca: c.tls_ca } : {}), ...(isIP(c.host ?? "") ? {} : { servername: c.host }) },
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  try {
    const m = emailMessage(p);
    const info = await transport.sendMail({ from: c.from, to: c.to, subject: m.subject, text: m.text });
    return { ok: true, status: Number(String(info.response).slice(0, 3)) || 250 };
  } catch (e) {
    const err = e as { responseCode?: number; message?: string };
    return { ok: false, status: err.responseCode, error: err.message ?? String(e) };
  } finally {
    transport.close();
  }
}
