/**
 * A console route: one URL and verb, the permission it needs, whether it touches host data, and
 * a handler that gets a plain `ConsoleRequest` (never Elysia's Context). Every feature exports a
 * table of these; the plugin mounts them through one guard (src/web/guard.ts), and the route
 * matrix test (test/web/route-matrix.test.ts) enumerates them from the mounted router.
 */
import type { Session } from "../auth/session.ts";
import type { User } from "../auth/users.ts";
import type { Grants } from "../auth/roles.ts";
import { HostScope } from "../auth/host-scope.ts";
import type { ScopedHost } from "../store/postgres/queries-console.ts";
import type { ScopedViolation } from "../security/posture.ts";

/** "public": no session needed (login, setup, assets); "signed-in": any fully signed-in user. */
export type Access = "public" | "signed-in" | (string & {});

/**
 * What host data a route touches (default "none"):
 * - "host": the `:id` path parameter is an agent id; the guard resolves it within the scope of
 *   the route's permission into `req.host`, and answers 404 (as for a missing host) otherwise.
 * - "violation": the `:id` path parameter is a CIS violation id; resolved the same way into
 *   `req.violation` (and its host into `req.host`).
 * - "fleet": reads or acts on many hosts; the handler passes `req.scope` to the model.
 * - "none": no host data (users, roles, settings, audit, sign-in).
 */
export type HostData = "none" | "fleet" | "host" | "violation";

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
  /** The hosts this request may touch under the route's permission (none on public/signed-in routes). */
  scope: HostScope;
  /** Set by the guard on "host" and "violation" routes: the host, found within `scope`. */
  host?: ScopedHost;
  /** Set by the guard on "violation" routes. */
  violation?: ScopedViolation;
  /** Set on dangerous routes after the guard checked confirmation and re-authentication. */
  reauth?: "recent" | "password" | "totp";
  /**
   * Set when an API token (Authorization: Bearer, /api/* only) authenticated the request: then
   * `session` is null, `user` is the token's owner and `grants` what the token may do now.
   */
  token?: TokenPrincipal;
  raw: Request;
}

/** The API token behind a request (src/auth/api-tokens.ts). */
export interface TokenPrincipal {
  id: number;
  name: string;
  aiClient: boolean;
  clientName: string;
}

/** Documentation of a route for the OpenAPI document (src/web/api/openapi.ts); all optional. */
export interface RouteDoc {
  summary?: string;
  description?: string;
  /** Path parameters (`:name` in the path) and what they are. */
  params?: Record<string, string>;
  /** Query-string parameters and what they are. */
  query?: Record<string, string>;
  /** Fields of a POST body (form or JSON object) and what they are. */
  body?: Record<string, string>;
  /** Status codes besides the refusals every route may give, and what they mean. */
  responses?: Record<string, string>;
}

export interface ConsoleRoute {
  method: "GET" | "POST";
  path: string;
  access: Access;
  /** Session stages allowed besides "full" (e.g. the TOTP step of the login). */
  stages?: Array<"mfa" | "enroll" | "password">;
  dangerous?: DangerSpec;
  /** What host data the route touches; see HostData. Absent: "none". */
  hostData?: HostData;
  /** For the OpenAPI document of the /api/ routes. */
  doc?: RouteDoc;
  handler(req: ConsoleRequest): Promise<Response> | Response;
}

/** The user holds `permission`; with `host`, also within that permission's host scope. */
export function can(req: ConsoleRequest, permission: string, host?: { tags: readonly string[] }): boolean {
  if (!req.grants?.permissions.has(permission)) return false;
  return host ? scopeFor(req, permission).covers(host.tags) : true;
}

/** The hosts the user may reach with `permission` (for a second permission a page also checks). */
export function scopeFor(req: ConsoleRequest, permission: string): HostScope {
  return req.grants && (req.session?.stage === "full" || req.token) ? HostScope.forPermission(req.grants.roleScopes, permission) : HostScope.none(permission);
}
