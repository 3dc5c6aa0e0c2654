/**
 * The OpenAPI 3.1 document of the JSON API, generated from the route declarations: every
 * mounted console route under /api/ becomes an operation, with its permission (`x-permission`),
 * what host data it touches (`x-host-data`), whether it is dangerous (`x-dangerous`), the
 * parameters its path names, and what its `doc` (src/web/route.ts RouteDoc) adds. Served at
 * GET /api/openapi.json, public: it describes routes, never data.
 */
import type { ConsoleRoute } from "../route.ts";
import { SESSION_COOKIE } from "../../auth/session.ts";
import { securityHeaders } from "../respond.ts";

export const OPENAPI_PATH = "/api/openapi.json";
export const API_VERSION = "1";

type Json = Record<string, unknown>;

const errorRef = { $ref: "#/components/schemas/Error" };
const errorResponse = (description: string) => ({ description, content: { "application/json": { schema: errorRef } } });

/** "/api/hosts/:id/logs" -> "/api/hosts/{id}/logs" */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, "{$1}");
}

function operationId(r: ConsoleRoute): string {
  const words = r.path.replace(/^\/api\//, "").split("/").map((p) => (p.startsWith(":") ? `by-${p.slice(1)}` : p)).join("-");
  return `${r.method.toLowerCase()}-${words}`.replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ""));
}

function operation(r: ConsoleRoute): Json {
  const doc = r.doc ?? {};
  const pathParams = [...r.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  const parameters: Json[] = [
    ...pathParams.map((name) => ({
      name, in: "path", required: true,
      description: doc.params?.[name] ?? (r.hostData === "violation" ? "The CIS violation's id" : name === "id" && r.hostData === "host" ? "The host's (agent's) id" : name),
      schema: name === "id" ? { type: "integer", minimum: 1 } : { type: "string" },
    })),
    ...Object.entries(doc.query ?? {}).map(([name, description]) => ({ name, in: "query", required: false, description, schema: { type: "string" } })),
  ];
  const permission = r.access === "public" ? "none (public)" : r.access === "signed-in" ? "any signed-in user or token" : `\`${r.access}\``;
  const notes = [
    doc.description,
    `Permission: ${permission}.`,
    r.hostData === "host" || r.hostData === "violation" ? "A host outside the caller's scope for that permission answers 404, as a missing one." : "",
    r.hostData === "fleet" ? "Covers only the hosts in the caller's scope for that permission." : "",
    r.dangerous ? "Dangerous: a signed-in user sends `confirm` (the phrase) and `reauth` (password or authenticator code); API tokens are refused with 403 `dangerous_by_token`." : "",
  ].filter(Boolean);
  const responses: Json = {
    "200": { description: "Success", content: { "application/json": { schema: { type: "object" } } } },
    ...Object.fromEntries(Object.entries(doc.responses ?? {}).map(([code, description]) => [code, { description }])),
    "400": errorResponse("The request is malformed (parameters, body)"),
  };
  if (r.access !== "public") {
    responses["401"] = errorResponse("The API token is missing, wrong, expired or revoked (WWW-Authenticate: Bearer)");
    responses["403"] = errorResponse("The caller lacks the permission (`forbidden`), or the operation needs a person (`dangerous_by_token`, `confirmation_required`)");
    responses["429"] = errorResponse("Too many failed token attempts from this address (Retry-After)");
  }
  if (r.hostData === "host" || r.hostData === "violation") responses["404"] = errorResponse("No such host (or violation) in the caller's scope");
  const op: Json = {
    operationId: operationId(r),
    summary: doc.summary ?? `${r.method} ${r.path}`,
    description: notes.join("\n\n"),
    tags: [r.path.split("/")[2] ?? "api"],
    parameters,
    responses,
    security: r.access === "public" ? [] : [{ bearerToken: [] }, { sessionCookie: [] }],
    "x-permission": r.access,
    "x-host-data": r.hostData ?? "none",
    "x-dangerous": Boolean(r.dangerous),
  };
  if (r.method === "POST") {
    const properties = Object.fromEntries(Object.entries(doc.body ?? {}).map(([k, description]) => [k, { description }]));
    const schema = { type: "object", properties, additionalProperties: true };
    op.requestBody = {
      required: false,
      content: { "application/json": { schema }, "application/x-www-form-urlencoded": { schema } },
    };
  }
  return op;
}

/** The document for these routes (only those under /api/ appear). */
export function openApiDocument(routes: readonly ConsoleRoute[]): Json {
  const paths: Record<string, Json> = {};
  for (const r of [...routes].filter((x) => x.path.startsWith("/api/")).sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method))) {
    const p = (paths[openApiPath(r.path)] ??= {});
    p[r.method.toLowerCase()] = operation(r);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "ServerMind API",
      version: API_VERSION,
      description: "The JSON API of the ServerMind console. Authenticate with a personal API token (`Authorization: Bearer smp_...`, created under /account/tokens) or a console session. See docs/api.md.",
    },
    servers: [{ url: "/" }],
    components: {
      securitySchemes: {
        bearerToken: { type: "http", scheme: "bearer", description: "A personal API token (smp_...): on /api/ routes only, never together with a session cookie." },
        sessionCookie: { type: "apiKey", in: "cookie", name: SESSION_COOKIE, description: "A console session; state-changing requests also need the X-CSRF-Token header." },
      },
      schemas: {
        Error: {
          type: "object", required: ["error"],
          properties: { error: { type: "object", required: ["code", "message"], properties: { code: { type: "string" }, message: { type: "string" } } } },
        },
      },
    },
    paths,
  };
}

/** GET /api/openapi.json over the routes `all()` returns (the console's whole table, this route included). */
export function openApiRoute(all: () => readonly ConsoleRoute[]): ConsoleRoute {
  let cached: string | null = null;
  return {
    method: "GET", path: OPENAPI_PATH, access: "public",
    doc: { summary: "This document: the OpenAPI 3.1 description of every /api/ route" },
    handler() {
      cached ??= JSON.stringify(openApiDocument(all()));
      return new Response(cached, { status: 200, headers: securityHeaders(new Headers({ "content-type": "application/json" })) });
    },
  };
}
