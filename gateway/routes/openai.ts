import { Hono } from "hono";
import { KeypoolError, invalidRequest } from "../errors";
import type { GatewayHono, IsolateState } from "../context";
import { assertModelAllowed, authenticateClient } from "../logic/client-auth";
import { secretCacheFor } from "../logic/secrets";
import { queueEventSink } from "../storage/event-sink";
import { loadPool } from "../storage/snapshot-cache";
import { proxyRequest } from "../proxy";

/** JSON endpoints forwarded to the pool; each body names its `model`. */
export const JSON_ENDPOINTS = [
  "/chat/completions",
  "/completions",
  "/embeddings",
  "/responses",
  "/moderations",
  "/rerank",
  "/images/generations",
] as const;

/** Largest request body accepted (bigger ones get a 413 before anything goes upstream). */
export const MAX_BODY_BYTES = 20 * 1024 * 1024;

function readModel(body: unknown): { model: string; stream: boolean } {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw invalidRequest("The request body must be a JSON object.");
  const { model, stream } = body as { model?: unknown; stream?: unknown };
  if (typeof model !== "string" || model.trim() === "") throw invalidRequest("You must provide a model parameter.", "model");
  if (stream !== undefined && stream !== null && typeof stream !== "boolean") throw invalidRequest("'stream' must be a boolean.", "stream");
  return { model, stream: stream === true };
}

/**
 * The OpenAI-compatible routes, mounted at `/v1` and at the root (the seed's
 * un-prefixed aliases). Bodies are forwarded byte for byte.
 */
export function openAIRoutes(state: IsolateState) {
  const app = new Hono<GatewayHono>();

  const forward = (endpoint: string) =>
    app.post(endpoint, async (c) => {
      const now = Date.now();
      const pool = await loadPool(c.env.SNAPSHOT, now, (p) => c.executionCtx.waitUntil(p));
      const client = await authenticateClient(c.req.raw.headers, pool.clientKeysByHash, now);
      const contentType = c.req.header("content-type") ?? "";
      if (!contentType.toLowerCase().includes("application/json")) {
        throw new KeypoolError(415, "invalid_request_error", "Send the request body as application/json.", "unsupported_media_type");
      }
      const declared = Number(c.req.header("content-length") ?? "0");
      if (declared > MAX_BODY_BYTES) throw new KeypoolError(413, "invalid_request_error", `The request body is larger than ${MAX_BODY_BYTES} bytes.`, "body_too_large");
      const body = await c.req.arrayBuffer();
      if (body.byteLength > MAX_BODY_BYTES) throw new KeypoolError(413, "invalid_request_error", `The request body is larger than ${MAX_BODY_BYTES} bytes.`, "body_too_large");
      let parsed: unknown;
      try {
        parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(body));
      } catch {
        throw invalidRequest("The request body is not valid JSON.");
      }
      const { model, stream } = readModel(parsed);
      assertModelAllowed(client, model);
      const url = new URL(c.req.url);
      return proxyRequest(
        { pool, client, endpoint, search: url.search, method: "POST", headers: c.req.raw.headers, body, model, stream, signal: c.req.raw.signal },
        {
          fetch: (input, init) => fetch(input, init),
          now: Date.now,
          random: Math.random,
          newId: () => crypto.randomUUID(),
          sink: queueEventSink(c.env.EVENTS),
          waitUntil: (p) => c.executionCtx.waitUntil(p),
          secrets: secretCacheFor(c.env.KEY_ENCRYPTION_KEY),
          observations: state.observations,
        },
      );
    });
  for (const endpoint of JSON_ENDPOINTS) forward(endpoint);

  app.get("/models", async (c) => {
    const now = Date.now();
    const pool = await loadPool(c.env.SNAPSHOT, now, (p) => c.executionCtx.waitUntil(p));
    const client = await authenticateClient(c.req.raw.headers, pool.clientKeysByHash, now);
    const models = new Map<string, string>();
    for (const u of pool.snapshot.upstreams) {
      if (!u.enabled) continue;
      for (const m of u.models) if (!models.has(m) && (client.models.length === 0 || client.models.includes(m))) models.set(m, u.kind);
    }
    return c.json({
      object: "list",
      data: [...models].map(([id, ownedBy]) => ({ id, object: "model", created: Math.floor(pool.snapshot.generatedAt / 1000), owned_by: ownedBy })),
    });
  });

  return app;
}
