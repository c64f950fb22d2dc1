// @ts-check
/**
 * A mock OpenAI-compatible upstream for tests, the demo and benchmarks. Plain Node,
 * no dependencies. Every key answers 200 unless told otherwise through the control
 * API (`POST /__mock/keys`) or `setKeyBehavior()`:
 *   ok | rate_limit (429 + Retry-After) | unauthorized (401) | no_balance (402)
 *   | server_error (500) | drop (connection destroyed), plus `delayMs` before answering.
 * `GET /__mock/stats` reports what it served, so tests can compare totals exactly.
 */
import http from "node:http";
import { pathToFileURL } from "node:url";

/** @typedef {{ mode?: "ok" | "rate_limit" | "unauthorized" | "no_balance" | "server_error" | "drop", retryAfterSeconds?: number, delayMs?: number, chunkDelayMs?: number }} KeyBehavior */

const REPLY = "Hello from the Keypool mock upstream. This answer is deterministic.";
const MODELS = ["mock-gpt", "mock-gpt-mini", "mock-embed"];

/** Deterministic prompt token count: a quarter of the characters of every string in the input. */
function countPromptTokens(body) {
  let chars = 0;
  const walk = (v) => {
    if (typeof v === "string") chars += v.length;
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(body.messages ?? body.input ?? body.prompt ?? "");
  return Math.max(1, Math.ceil(chars / 4));
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

function errorBody(message, type, code) {
  return { error: { message, type, param: null, code } };
}

/**
 * Starts the mock on `port` (0: any free port) at 127.0.0.1.
 * @param {{ port?: number }} [options]
 */
export async function startMockUpstream(options = {}) {
  /** @type {Map<string, KeyBehavior>} */
  const behaviors = new Map();
  const stats = { requests: 0, byKey: /** @type {Record<string, number>} */ ({}), promptTokens: 0, completionTokens: 0, totalTokens: 0 };

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://mock");
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const raw = Buffer.concat(chunks).toString("utf8");

      if (url.pathname === "/__mock/keys" && req.method === "POST") {
        const { key, ...behavior } = JSON.parse(raw);
        behaviors.set(key, behavior);
        return sendJson(res, 200, { ok: true });
      }
      if (url.pathname === "/__mock/stats") return sendJson(res, 200, stats);
      if (url.pathname === "/__mock/reset" && req.method === "POST") {
        behaviors.clear();
        Object.assign(stats, { requests: 0, byKey: {}, promptTokens: 0, completionTokens: 0, totalTokens: 0 });
        return sendJson(res, 200, { ok: true });
      }

      const key = (req.headers.authorization ?? "").replace(/^Bearer\s+/i, "");
      if (!key) return sendJson(res, 401, errorBody("Missing API key.", "authentication_error", "invalid_api_key"));
      stats.requests++;
      stats.byKey[key] = (stats.byKey[key] ?? 0) + 1;
      const b = behaviors.get(key) ?? {};
      if (b.delayMs) await sleep(b.delayMs);
      switch (b.mode ?? "ok") {
        case "rate_limit":
          return sendJson(res, 429, errorBody("Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"), { "retry-after": String(b.retryAfterSeconds ?? 20) });
        case "unauthorized":
          return sendJson(res, 401, errorBody("Incorrect API key provided.", "authentication_error", "invalid_api_key"));
        case "no_balance":
          return sendJson(res, 402, errorBody("Insufficient balance.", "insufficient_quota", "insufficient_balance"));
        case "server_error":
          return sendJson(res, 500, errorBody("The upstream had an error.", "server_error", null));
        case "drop":
          req.socket.destroy();
          return;
      }

      const path = url.pathname.replace(/^\/v1/, "");
      if (path === "/models" && req.method === "GET") {
        return sendJson(res, 200, { object: "list", data: MODELS.map((id) => ({ id, object: "model", created: 1700000000, owned_by: "mock" })) });
      }
      if (req.method !== "POST") return sendJson(res, 404, errorBody(`Unknown route ${req.method} ${url.pathname}`, "invalid_request_error", null));
      const body = raw ? JSON.parse(raw) : {};
      if (typeof body.model !== "string") return sendJson(res, 400, errorBody("You must provide a model parameter.", "invalid_request_error", null));
      if (body.model === "unknown-model") return sendJson(res, 404, errorBody(`The model '${body.model}' does not exist.`, "invalid_request_error", "model_not_found"));
      const promptTokens = countPromptTokens(body);

      if (path === "/embeddings") {
        const inputs = Array.isArray(body.input) ? body.input : [body.input];
        record(stats, promptTokens, 0);
        return sendJson(res, 200, {
          object: "list",
          model: body.model,
          data: inputs.map((_, index) => ({ object: "embedding", index, embedding: Array.from({ length: 8 }, (_, i) => (i + index) / 10) })),
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
        });
      }
      if (path === "/chat/completions") {
        const words = REPLY.split(" ");
        const completionTokens = words.length;
        const id = `chatcmpl-mock-${stats.requests}`;
        const created = Math.floor(Date.now() / 1000);
        if (body.stream) {
          res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
          const send = (obj) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
          for (let i = 0; i < words.length; i++) {
            const content = (i === 0 ? "" : " ") + words[i];
            send({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta: i === 0 ? { role: "assistant", content } : { content }, finish_reason: null }] });
            if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
          }
          send({ id, object: "chat.completion.chunk", created, model: body.model, choices: [{ index: 0, delta: {}, finish_reason: "stop" }] });
          if (body.stream_options?.include_usage) {
            send({ id, object: "chat.completion.chunk", created, model: body.model, choices: [], usage: usage(promptTokens, completionTokens) });
          }
          res.end("data: [DONE]\n\n");
          record(stats, promptTokens, completionTokens);
          return;
        }
        record(stats, promptTokens, completionTokens);
        return sendJson(res, 200, {
          id,
          object: "chat.completion",
          created,
          model: body.model,
          choices: [{ index: 0, message: { role: "assistant", content: REPLY }, finish_reason: "stop" }],
          usage: usage(promptTokens, completionTokens),
        });
      }
      return sendJson(res, 404, errorBody(`Unknown route ${req.method} ${url.pathname}`, "invalid_request_error", null));
    } catch (err) {
      sendJson(res, 500, errorBody(`mock failure: ${err instanceof Error ? err.message : String(err)}`, "server_error", null));
    }
  });

  await new Promise((resolve) => server.listen(options.port ?? 0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    /** The base URL to give Keypool as an upstream (ends in /v1). */
    baseUrl: `http://127.0.0.1:${port}/v1`,
    stats,
    /** @param {string} key @param {KeyBehavior} behavior */
    setKeyBehavior(key, behavior) {
      behaviors.set(key, behavior);
    },
    close() {
      return new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve(undefined));
      });
    },
  };
}

function usage(promptTokens, completionTokens) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

function record(stats, promptTokens, completionTokens) {
  stats.promptTokens += promptTokens;
  stats.completionTokens += completionTokens;
  stats.totalTokens += promptTokens + completionTokens;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const mock = await startMockUpstream({ port: Number(process.env.MOCK_PORT ?? 8790) });
  console.log(`mock upstream listening: ${mock.baseUrl}`);
}
