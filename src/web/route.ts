/**
 * A console route: one URL and verb, the permission it needs, and a handler that gets a plain
 * `ConsoleRequest` (never Elysia's Context). Every feature exports a table of these; the plugin
 * mounts them through one guard (src/web/guard.ts), and the permission test enumerates them.
 */
import type { Session } from "../auth/session.ts";
import type { User } from "../auth/users.ts";
import type { Grants } from "../auth/roles.ts";

/** "public": no session needed (login, setup, assets); "signed-in": any fully signed-in user. */
export type Access = "public" | "signed-in" | (string & {});

export interface DangerSpec {
  /**
   * The phrase the user must type, computed from the request (e.g. the username being deleted);
   * null when this particular request is harmless (a dry run) and needs no confirmation.
   */
  phrase(req: ConsoleRequest): string | null | Promise<string | null>;
}

export interface ConsoleRequest {
  method: string;
  url: URL;
  params: Record<string, string>;
  query: URLSearchParams;
  form: URLSearchParams;
  ip: string;
  userAgent: string;
  htmx: { request: boolean; boosted: boolean; target: string; trigger: string };
  /** CSRF token to put in forms (the session's, or the pre-login cookie's). */
  csrf: string;
  session: Session | null;
  user: User | null;
  grants: Grants | null;
  /** Set on dangerous routes after the guard checked confirmation and re-authentication. */
  reauth?: "recent" | "password" | "totp";
  raw: Request;
}

export interface ConsoleRoute {
  method: "GET" | "POST";
  path: string;
  access: Access;
  /** Session stages allowed besides "full" (e.g. the TOTP step of the login). */
  stages?: Array<"mfa" | "enroll" | "password">;
  dangerous?: DangerSpec;
  handler(req: ConsoleRequest): Promise<Response> | Response;
}

export function can(req: ConsoleRequest, permission: string): boolean {
  return req.grants?.permissions.has(permission) ?? false;
}
