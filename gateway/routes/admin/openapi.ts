import type { Hono } from "hono";
import { z } from "zod";
import { openAIErrorSchema } from "../../../schema";
import type { GatewayHono } from "../../context";
import { readBody, readQuery, type AdminContext } from "./shared";

/**
 * Every admin route is declared with `op()`: what it does, the body and query it
 * takes (which `op` validates before the handler runs, so the document and the
 * validation cannot disagree) and what it answers. `openApiDocument()` walks the
 * routes Hono actually holds and describes each from its declaration; a route
 * without one is listed as undocumented, which a test refuses.
 */

/** What one admin operation takes and answers. */
export interface Operation<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined> {
  summary: string;
  description?: string;
  /** Where the dashboard and the docs group it. */
  tag: "session" | "upstreams" | "keys" | "client keys" | "prices" | "requests" | "alerts" | "stats" | "settings" | "audit" | "backup";
  /** Reachable without a session. */
  public?: boolean;
  /** The JSON body, validated before the handler runs (400 naming the field otherwise). */
  body?: B;
  /** What the body may hold, when the validator takes more and the handler checks the rest (the settings' merge). */
  bodyShape?: z.ZodType;
  /** The query string, validated before the handler runs. */
  query?: Q;
  /** The success answer. */
  ok: { status?: 200 | 201 | 202; description: string; schema?: z.ZodType; contentType?: string };
  /** Error answers besides those every admin route may give (400, 403, 415, 503; and 401 unless public). */
  errors?: Partial<Record<401 | 404 | 409 | 413 | 429, string>>;
}

type Input<S> = S extends z.ZodType ? z.infer<S> : undefined;
type Handler<B, Q> = (c: AdminContext, input: { body: Input<B>; query: Input<Q> }) => Response | Promise<Response>;

const declared = new WeakMap<object, Operation<z.ZodType | undefined, z.ZodType | undefined>>();

/** A route handler that validates the operation's body and query, then runs `handler` with them. */
export function op<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined>(spec: Operation<B, Q>, handler: Handler<B, Q>) {
  const route = async function documentedRoute(c: AdminContext): Promise<Response> {
    const body = (spec.body ? await readBody(c, spec.body) : undefined) as Input<B>;
    const query = (spec.query ? readQuery(c, spec.query) : undefined) as Input<Q>;
    return handler(c, { body, query });
  };
  declared.set(route, spec as Operation<z.ZodType | undefined, z.ZodType | undefined>);
  return route;
}

/** Hono's key on a handler it wrapped while mounting a sub-app (hono/utils/constants). */
const COMPOSED_HANDLER = "__COMPOSED_HANDLER";

function declarationOf(handler: unknown): Operation<z.ZodType | undefined, z.ZodType | undefined> | undefined {
  for (let h = handler; typeof h === "function"; h = (h as unknown as Record<string, unknown>)[COMPOSED_HANDLER]) {
    const spec = declared.get(h);
    if (spec) return spec;
  }
  return undefined;
}

type JsonSchema = Record<string, unknown>;

const jsonSchema = (schema: z.ZodType, io: "input" | "output"): JsonSchema => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as JsonSchema;
  return rest;
};

/** The query parameters of a query schema (an object of scalars), as OpenAPI parameters. */
function queryParameters(schema: z.ZodType): JsonSchema[] {
  const js = jsonSchema(schema, "input") as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(js.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return { name, in: "query", required: js.required?.includes(name) ?? false, ...(description ? { description } : {}), schema: rest };
  });
}

const ERROR_CONTENT = { "application/json": { schema: { $ref: "#/components/schemas/Error" } } };

/** The errors any admin operation may give, described once as components (the operations refer to them). */
const COMMON_ERRORS = {
  "400": ["BadRequest", "A body or query that failed validation (`param` names the field), or a body that is not UTF-8."],
  "401": ["Unauthorized", "No valid admin session."],
  "403": ["CrossOrigin", "A state-changing request from another origin."],
  "413": ["TooLarge", "A body over 16 MiB."],
  "415": ["NotJson", "A body that is not application/json."],
  "503": ["NotConfigured", "A secret the Worker needs is not set (the message names it)."],
} as const;
type CommonStatus = keyof typeof COMMON_ERRORS;
const common = (status: CommonStatus) => ({ $ref: `#/components/responses/${COMMON_ERRORS[status][0]}` });

/**
 * The OpenAPI 3.1 document of the routes `app` holds under `base` (the admin
 * app's own routes: "", the whole gateway's: "/admin/api"), served at
 * `serverUrl`, and the routes it found no declaration for.
 */
export function openApiDocument(app: Hono<GatewayHono>, base: string, serverUrl = "/admin/api"): { document: JsonSchema; undocumented: string[] } {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  const undocumented: string[] = [];
  for (const route of app.routes) {
    if (route.method === "ALL" || !route.path.startsWith(base)) continue;
    const method = route.method.toLowerCase();
    const path = route.path.slice(base.length) || "/";
    const openApiPath = path.replace(/:(\w+)/g, "{$1}");
    if (paths[openApiPath]?.[method]) continue;
    const spec = declarationOf(route.handler);
    if (!spec) {
      // A middleware on one route (the same path and method also holds the handler) is no operation of its own.
      if (!app.routes.some((r) => r !== route && r.method === route.method && r.path === route.path && declarationOf(r.handler)))
        undocumented.push(`${route.method} ${route.path}`);
      continue;
    }
    const parameters = [
      ...[...path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } })),
      ...(spec.query ? queryParameters(spec.query) : []),
    ];
    const status = String(spec.ok.status ?? 200);
    const okContent = spec.ok.schema
      ? { content: { [spec.ok.contentType ?? "application/json"]: { schema: jsonSchema(spec.ok.schema, "output") } } }
      : spec.ok.contentType
        ? { content: { [spec.ok.contentType]: { schema: { type: "string" } } } }
        : {};
    // The errors that can happen to this operation: validation only with a body or query, the origin and
    // media-type checks only for state changes with a body, the session check unless it is public.
    const changes = method !== "get" && method !== "head";
    const commonErrors: CommonStatus[] = [
      ...(spec.body || spec.query ? (["400"] as const) : []),
      ...(spec.public ? [] : (["401"] as const)),
      ...(changes ? (["403"] as const) : []),
      ...(spec.body ? (["413", "415"] as const) : []),
      "503",
    ];
    const bodySchema = spec.bodyShape ?? spec.body;
    (paths[openApiPath] ??= {})[method] = {
      operationId: `${method}${openApiPath.replace(/[{}]/g, "").replace(/(^|[/_.-])(\w)/g, (_m, _s, ch: string) => ch.toUpperCase())}`,
      summary: spec.summary,
      ...(spec.description ? { description: spec.description } : {}),
      tags: [spec.tag],
      ...(spec.public ? { security: [] } : {}),
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(bodySchema ? { requestBody: { required: true, content: { "application/json": { schema: jsonSchema(bodySchema, "input") } } } } : {}),
      responses: {
        [status]: { description: spec.ok.description, ...okContent },
        ...Object.fromEntries(commonErrors.map((status) => [status, common(status)])),
        ...Object.fromEntries(Object.entries(spec.errors ?? {}).map(([status, description]) => [status, { description, content: ERROR_CONTENT }])),
      },
    };
  }
  const document = {
    openapi: "3.1.0",
    info: {
      title: "Keypool admin API",
      version: "1",
      description:
        "Manages a Keypool: upstreams, their keys, client keys, settings; reads usage and the audit trail. Log in with POST /login; then send the session cookie it sets, or its token as `Authorization: Bearer`.",
    },
    servers: [{ url: serverUrl }],
    security: [{ session: [] }, { bearer: [] }],
    tags: ["session", "upstreams", "keys", "client keys", "prices", "requests", "alerts", "stats", "settings", "audit", "backup"].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        session: { type: "apiKey", in: "cookie", name: "keypool_admin", description: "The HttpOnly cookie POST /login sets (12 h)." },
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "The token POST /login answers with." },
      },
      schemas: { Error: jsonSchema(openAIErrorSchema, "output") },
      responses: Object.fromEntries(Object.values(COMMON_ERRORS).map(([name, description]) => [name, { description, content: ERROR_CONTENT }])),
    },
  };
  return { document, undocumented };
}
