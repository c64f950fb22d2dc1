import { Hono, type Context } from "hono";
import { dayStart, fromMicros, monthStart, newEventId } from "../../schema";
import { readClientDays, rollupsKeptFrom } from "../../storage/rollups";
import { foldDatabases } from "../../storage/fold-databases";
import type { GatewayHono, IsolateState } from "../context";
import { KeypoolError, errorResponse, invalidRequest } from "../errors";
import { assertModelAllowed, authenticateClient } from "../logic/client-auth";
import { clientKeyStatus, hasQuota, quotaHeaders, type QuotaVerdict } from "../logic/client-limits";
import { addCorsHeaders, allowOriginFor, preflightResponse } from "../logic/cors";
import { estimatePromptTokens } from "../logic/estimate-tokens";
import { MAX_JSON_DEPTH, SCAN_BEFORE_PARSE_BYTES, jsonNestsDeeperThan, nestsDeeperThan, type ClientBody } from "../logic/request-body";
import { keyringFor } from "../logic/secrets";
import { requestCost } from "../logic/spend";
import { decodeUtf8Body } from "../logic/utf8";
import { missingSecrets } from "../middleware";
import { listModels } from "../models";
import { proxyRequest } from "../proxy";
import type { LoadedPool } from "../storage/snapshot-cache";
import { nextEventQueue, queueEventSink } from "../storage/event-sink";

/** Endpoints with a JSON body naming its `model`. */
const JSON_ENDPOINTS = [
  "/chat/completions",
  "/completions",
  "/responses",
  "/embeddings",
  "/moderations",
  "/rerank",
  "/images/generations",
  "/audio/speech",
] as const;

/** Endpoints with a multipart body (files), forwarded byte for byte. */
const MULTIPART_ENDPOINTS = ["/images/edits", "/images/variations", "/audio/transcriptions", "/audio/translations"] as const;

/** Largest request body accepted (bigger ones get a 413 before anything goes upstream). */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

type OpenAIContext = Context<GatewayHono>;

/** What each quota is called in a refusal. */
const QUOTA_WORDS: Record<Exclude<QuotaVerdict, { ok: true }>["code"], (limit: string) => string> = {
  rpm_limit_exceeded: (n) => `is limited to ${n} requests per minute`,
  tpm_limit_exceeded: (n) => `is limited to ${n} tokens per minute`,
  daily_request_quota_exceeded: (n) => `has used its ${n} requests for today`,
  daily_token_quota_exceeded: (n) => `has used its ${n} tokens for today`,
  monthly_token_quota_exceeded: (n) => `has used its ${n} tokens for this month`,
  daily_budget_exceeded: (n) => `has spent its daily budget of ${n}`,
  monthly_budget_exceeded: (n) => `has spent its monthly budget of ${n}`,
};

/** The keys a client presented (its Authorization and x-api-key values), never to be kept in a stored body. */
function presentedKeys(headers: Headers): string[] {
  const keys: string[] = [];
  const auth = headers.get("authorization");
  if (auth) keys.push(auth.replace(/^Bearer\s+/i, "").trim());
  const apiKey = headers.get("x-api-key");
  if (apiKey) keys.push(apiKey.trim());
  return keys;
}

/** The 429 for a client over one of its own limits: which one, when it frees (Retry-After), and its x-ratelimit-* headers. */
function quotaRefusal(verdict: Exclude<QuotaVerdict, { ok: true }>, currency: string, now: number): KeypoolError {
  const ms = Math.max(1, Math.ceil(verdict.retryAfterMs));
  const seconds = Math.ceil(ms / 1000);
  const units = fromMicros(verdict.limit);
  // Cents as usual; a budget below a cent in full.
  const limit = verdict.window.kind === "money" ? `${Number.isInteger(units * 100) ? units.toFixed(2) : String(units)} ${currency}` : String(verdict.limit);
  return new KeypoolError(429, "rate_limit_error", `This client key ${QUOTA_WORDS[verdict.code](limit)}; retry in ${seconds}s.`, verdict.code, null, {
    ...quotaHeaders(verdict.windows, false, now),
    "retry-after": String(seconds),
    "retry-after-ms": String(ms),
  });
}

const tooLarge = () => new KeypoolError(413, "invalid_request_error", `The request body is larger than ${MAX_BODY_BYTES} bytes.`, "body_too_large");

async function readBytes(c: OpenAIContext): Promise<ArrayBuffer> {
  if (Number(c.req.header("content-length") ?? "0") > MAX_BODY_BYTES) throw tooLarge();
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > MAX_BODY_BYTES) throw tooLarge();
  return bytes;
}

function readStream(value: unknown): boolean {
  if (value !== undefined && value !== null && typeof value !== "boolean") throw invalidRequest("'stream' must be a boolean.", "stream");
  return value === true;
}

function readModel(value: unknown): string {
  if (typeof value !== "string" || value.trim() === "") throw invalidRequest("You must provide a model parameter.", "model");
  if (value.length > 200) throw invalidRequest("The model name is too long.", "model");
  return value;
}

async function readJsonBody(c: OpenAIContext, endpoint: string): Promise<ClientBody> {
  const contentType = c.req.header("content-type") ?? "";
  if (contentType.split(";")[0]!.trim().toLowerCase() !== "application/json") {
    throw new KeypoolError(415, "invalid_request_error", "Send the request body as application/json.", "unsupported_media_type");
  }
  const bytes = await readBytes(c);
  const tooDeep = () => invalidRequest(`The request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels.`);
  // One nesting check per body: large ones before parsing (see SCAN_BEFORE_PARSE_BYTES), the rest after.
  const scanned = bytes.byteLength > SCAN_BEFORE_PARSE_BYTES;
  if (scanned && jsonNestsDeeperThan(new Uint8Array(bytes), MAX_JSON_DEPTH)) throw tooDeep();
  const text = decodeUtf8Body(bytes);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalidRequest("The request body is not valid JSON.");
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalidRequest("The request body must be a JSON object.");
  if (!scanned && nestsDeeperThan(json, MAX_JSON_DEPTH)) throw tooDeep();
  const fields = json as Record<string, unknown>;
  return { endpoint, bytes, json: fields, contentType, model: readModel(fields.model), stream: readStream(fields.stream) };
}

async function readMultipartBody(c: OpenAIContext, endpoint: string): Promise<ClientBody> {
  const contentType = c.req.header("content-type") ?? "";
  if (!/^multipart\/form-data;.*boundary=/i.test(contentType)) {
    throw new KeypoolError(415, "invalid_request_error", "Send this request as multipart/form-data with a boundary.", "unsupported_media_type");
  }
  const bytes = await readBytes(c);
  let form: FormData;
  try {
    form = await new Request("https://keypool.invalid/", { method: "POST", headers: { "content-type": contentType }, body: bytes }).formData();
  } catch {
    throw invalidRequest("The multipart body could not be parsed.");
  }
  const stream = form.get("stream");
  return { endpoint, bytes, json: null, contentType, model: readModel(form.get("model")), stream: stream === "true" };
}

/**
 * The OpenAI-compatible routes, mounted at `/v1` and at the root (the seed's
 * un-prefixed aliases). Bodies are forwarded byte for byte.
 */
/** The query string of a URL, with its `?`, or empty (without parsing the whole URL). */
function searchOf(url: string): string {
  const q = url.indexOf("?");
  if (q < 0) return "";
  const hash = url.indexOf("#", q);
  return hash < 0 ? url.slice(q) : url.slice(q, hash);
}

export function openAIRoutes(state: IsolateState) {
  const app = new Hono<GatewayHono>();

  const pool = (c: OpenAIContext): Promise<LoadedPool> => state.pools.load(c.env.SNAPSHOT, Date.now(), (p) => c.executionCtx.waitUntil(p));

  /**
   * Wraps an OpenAI route: it needs KEY_ENCRYPTION_KEY, and answers CORS per the
   * corsOrigins setting — on its answers and its errors alike, so a browser can read
   * why it was refused. Server-side clients send no Origin: nothing more on their path.
   */
  const openAIRoute =
    (handle: (c: OpenAIContext) => Promise<Response>) =>
    async (c: OpenAIContext): Promise<Response> => {
      const serve = async () => {
        const missing = missingSecrets(c.env, ["KEY_ENCRYPTION_KEY"]);
        if (missing) throw missing;
        return handle(c);
      };
      const origin = c.req.header("origin");
      if (origin === undefined) return serve();
      const allow = allowOriginFor(origin, (await pool(c)).snapshot.settings.corsOrigins);
      let res = await serve().catch(errorResponse);
      if (allow === null) return res;
      try {
        addCorsHeaders(res.headers, allow);
      } catch {
        // An answer with immutable headers: copy it once.
        res = new Response(res.body, res);
        addCorsHeaders(res.headers, allow);
      }
      return res;
    };

  for (const path of [...JSON_ENDPOINTS, ...MULTIPART_ENDPOINTS, "/models", "/key"]) {
    app.options(path, async (c) => {
      const origin = c.req.header("origin");
      if (origin === undefined) return new Response(null, { status: 204, headers: { allow: "GET, POST, OPTIONS" } });
      const allow = allowOriginFor(origin, (await pool(c)).snapshot.settings.corsOrigins);
      if (allow === null)
        throw new KeypoolError(
          403,
          "permission_error",
          "This origin may not call Keypool from a browser (see the corsOrigins setting).",
          "cors_origin_not_allowed",
        );
      return preflightResponse(allow, c.req.header("access-control-request-headers"));
    });
  }

  const forward = async (c: OpenAIContext, read: () => Promise<ClientBody>) => {
    const now = Date.now();
    const loaded = await pool(c);
    const client = await authenticateClient(c.req.raw.headers, loaded.clientKeysByHash, now);
    const body = await read();
    assertModelAllowed(client, body.model);
    const quota = hasQuota(client)
      ? state.limits.admit(client, loaded.usage?.clients?.get(client.id), loaded.usage?.at ?? 0, { now, timeZone: loaded.snapshot.settings.timeZone })
      : null;
    if (quota && !quota.ok) throw quotaRefusal(quota, loaded.snapshot.settings.currency, now);
    const quotaHeadersFor = quota ? () => quotaHeaders(quota.windows, true, now) : null;
    let res: Response;
    try {
      res = await proxyRequest(
        {
          pool: loaded,
          client,
          body,
          search: searchOf(c.req.url),
          headers: c.req.raw.headers,
          // Walks the whole prompt: only for an answer that reports no usage.
          promptEstimate: () => (body.json ? estimatePromptTokens(body.json) : 0),
          signal: c.req.raw.signal,
          keepBodies:
            (client.storeBodies ?? loaded.snapshot.settings.storeBodies)
              ? { maxBytes: loaded.snapshot.settings.bodyMaxBytes, secrets: presentedKeys(c.req.raw.headers) }
              : null,
        },
        {
          fetch: (input, init) => fetch(input, init),
          now: Date.now,
          random: Math.random,
          sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
          newId: () => newEventId(Date.now()),
          sink: state.events.sink(queueEventSink(c.env)),
          waitUntil: (p) => c.executionCtx.waitUntil(p),
          secrets: keyringFor(c.env),
          observations: state.observations,
          sendBodies: async (bodies) => void (await nextEventQueue(c.env).send({ bodies }, { contentType: "json" })),
          settle: (events) =>
            state.limits.settle(
              client,
              events.reduce((n, e) => n + e.totalTokens, 0),
              requestCost(loaded.prices, events),
              Date.now(),
            ),
        },
      );
    } catch (err) {
      // Keypool's own refusals (no key, every key cooling…) carry the client's limits too.
      if (quotaHeadersFor && err instanceof KeypoolError) Object.assign(err.headers, quotaHeadersFor());
      throw err;
    }
    if (quotaHeadersFor) {
      // The upstream's x-ratelimit-* headers were about one pool key; these are about the client.
      const headers = quotaHeadersFor();
      try {
        for (const [name, value] of Object.entries(headers)) res.headers.set(name, value);
      } catch {
        res = new Response(res.body, res);
        for (const [name, value] of Object.entries(headers)) res.headers.set(name, value);
      }
    }
    return res;
  };

  for (const endpoint of JSON_ENDPOINTS)
    app.post(
      endpoint,
      openAIRoute((c) => forward(c, () => readJsonBody(c, endpoint))),
    );
  for (const endpoint of MULTIPART_ENDPOINTS)
    app.post(
      endpoint,
      openAIRoute((c) => forward(c, () => readMultipartBody(c, endpoint))),
    );

  app.get(
    "/models",
    openAIRoute(async (c) => {
      const loaded = await pool(c);
      const client = await authenticateClient(c.req.raw.headers, loaded.clientKeysByHash, Date.now());
      const data = await listModels(loaded, client, {
        fetch: (input, init) => fetch(input, init),
        now: Date.now,
        random: Math.random,
        secrets: keyringFor(c.env),
        observations: state.observations,
      });
      return c.json({ object: "list", data });
    }),
  );

  // A client key's own quotas and usage, readable with the key itself (OpenRouter answers the same question at /key).
  app.get(
    "/key",
    openAIRoute(async (c) => {
      const now = Date.now();
      const loaded = await pool(c);
      const client = await authenticateClient(c.req.raw.headers, loaded.clientKeysByHash, now);
      const { settings } = loaded.snapshot;
      const { timeZone, currency } = settings;
      const windows = hasQuota(client) ? state.limits.windows(client, loaded.usage?.clients?.get(client.id), loaded.usage?.at ?? 0, { now, timeZone }) : [];
      const counted = await readClientDays(
        foldDatabases(c.env),
        client.id,
        monthStart(now, timeZone),
        dayStart(now, timeZone),
        rollupsKeptFrom(settings, "minute", now, "client"),
      );
      const status = clientKeyStatus(client, windows, counted, { currency, timeZone });
      return c.json(status);
    }),
  );

  // The seed exposed a pool key's account here; balances are an admin feature in Keypool.
  app.all("/user/info", () => {
    throw new KeypoolError(
      404,
      "not_found_error",
      "Upstream account details are not available to clients; balances are shown to admins on the dashboard.",
      "unknown_route",
    );
  });

  return app;
}
