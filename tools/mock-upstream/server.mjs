// @ts-check
/**
 * A mock OpenAI-compatible upstream for tests, the demo and benchmarks. Plain Node,
 * no dependencies. Every key answers 200 unless told otherwise through the control
 * API (`POST /__mock/keys`) or `setKeyBehavior()`:
 *   ok | rate_limit (429 + Retry-After) | unauthorized (401) | no_balance (402)
 *   | server_error (500) | drop (connection destroyed), plus `delayMs` before answering,
 *   `chunkDelayMs` between stream chunks, `omitUsage` (answers without usage) and
 *   `words` (a chat answer of that many words, one stream chunk each, or
 *   `wordsPerChunk` of them a chunk: text in bursts). The key
 *   `*` sets the behaviour of every key not told otherwise.
 * Fault profiles for chaos runs: `faultRate` (0–1) makes that share of a key's
 * requests fail, each in one of FAULTS picked at random (seeded, so a run can
 * be repeated): 429 with Retry-After, 500, a reset connection, a stall of
 * `stallMs` before answering, an answer cut off mid-way, and an SSE stream
 * carrying a line that is no SSE field (which readers must ignore).
 * `stats.reportedTokens` counts only usage the mock actually delivered.
 * Limits: `limits` makes the mock enforce a key's requests and tokens per window
 * (fixed windows of `windowMs`, aligned to the epoch, a minute by default) and a
 * daily quota of requests and tokens (the UTC day), answering 429 with the
 * bodies OpenAI sends for a rate limit and for a spent quota; with `headers`
 * it sends the x-ratelimit-* headers of the window and Retry-After on a 429,
 * with `headers: "retry-after"` only the latter, without them nothing says when
 * to come back (as some providers do). `stats.limited` counts those 429s,
 * `stats.limitedByKey` each key's by window start; `stats.served` what each key was served.
 * It serves chat completions (JSON, SSE, tool calls), completions, responses,
 * embeddings, moderations, rerank, image generation and edits, transcriptions,
 * translations and speech. `GET /__mock/stats` reports what it served, so tests
 * can compare totals exactly.
 */
import http from "node:http";
import { pathToFileURL } from "node:url";
import { seeded } from "../seeded.mjs";

/**
 * A key's limits as the mock enforces them: per window (`windowMs`, a minute by default) and per UTC day; `headers` sends the rate-limit headers.
 * @typedef {{ requests?: number, tokens?: number, windowMs?: number, dailyRequests?: number, dailyTokens?: number, headers?: boolean | "retry-after" }} MockLimits
 */
/** @typedef {{ mode?: "ok" | "rate_limit" | "unauthorized" | "no_balance" | "server_error" | "drop", retryAfterSeconds?: number, delayMs?: number, chunkDelayMs?: number, omitUsage?: boolean, words?: number, wordsPerChunk?: number, faultRate?: number, stallMs?: number, limits?: MockLimits }} KeyBehavior */
/**
 * A key's use of its limits: the current window's and the current day's counts.
 * @typedef {{ windowStart: number, requests: number, tokens: number, day: number, dayRequests: number, dayTokens: number }} LimitState
 */
/**
 * What the mock has served so far.
 * @typedef {{ requests: number, byKey: Record<string, number>, promptTokens: number, completionTokens: number, totalTokens: number, reportedTokens: number, cancelledStreams: number, faults: Record<string, number>, headerNames: Record<string, number>, lastBody: unknown, limited: { window: number, day: number }, limitedByKey: Record<string, Record<string, number>>, served: Record<string, { requests: number, tokens: number, maxWindowRequests: number, maxWindowTokens: number }> }} MockStats
 */
/**
 * A request body as the endpoints read it: JSON, or a multipart form's fields.
 * @typedef {Record<string, any>} RequestBody
 */
/**
 * What an endpoint handler gets: the exchange, the parsed body, the key's behaviour, the stats, and the fault drawn for this request.
 * @typedef {{ req: http.IncomingMessage, res: http.ServerResponse, body: RequestBody, b: KeyBehavior, stats: MockStats, fault: string | null }} Exchange
 */

/** The faults a `faultRate` draws from, evenly. */
const FAULTS = ["rate_limit", "server_error", "reset", "stall", "cut", "malformed"];

const REPLY = "Hello from the Keypool mock upstream. This answer is deterministic.";
const MODELS = ["mock-gpt", "mock-gpt-mini", "mock-embed"];

const WORDS = REPLY.split(" ");

/**
 * The response headers OpenAI sends with a chat answer (besides content type and
 * length), so a gateway that copies headers pays for as many as it would in
 * production: request id, processing time, version, rate-limit state, a cookie.
 * A key under enforced limits gets its own rate-limit headers (or none) instead.
 * @param {KeyBehavior} b
 */
function providerHeaders(b) {
  return {
    "x-request-id": `req_${Math.random().toString(36).slice(2, 14)}`,
    "openai-organization": "mock-org",
    "openai-processing-ms": "12",
    "openai-version": "2020-10-01",
    ...(b.limits
      ? {}
      : {
          "x-ratelimit-limit-requests": "10000",
          "x-ratelimit-limit-tokens": "2000000",
          "x-ratelimit-remaining-requests": "9999",
          "x-ratelimit-remaining-tokens": "1999950",
          "x-ratelimit-reset-requests": "6ms",
          "x-ratelimit-reset-tokens": "1ms",
        }),
    "strict-transport-security": "max-age=31536000; includeSubDomains; preload",
    "x-content-type-options": "nosniff",
    "set-cookie": "__cf_bm=mock; path=/; HttpOnly; Secure; SameSite=None",
  };
}

/**
 * Writes SSE frames, pausing `chunkDelayMs` between them when the key is paced.
 * @param {http.ServerResponse} res
 * @param {KeyBehavior} b
 * @param {MockStats} stats
 */
function sseWriter(res, b, stats) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", ...providerHeaders(b) });
  res.on("close", () => {
    if (!res.writableEnded) stats.cancelledStreams++;
  });
  return {
    /** @param {unknown} obj @param {string} [event] */
    async send(obj, event) {
      res.write(`${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(obj)}\n\n`);
      if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
    },
    end() {
      res.end("data: [DONE]\n\n");
    },
  };
}

/**
 * Chat completions: JSON or SSE, tool calls when tools are offered, usage unless the key omits it.
 * @param {Exchange} exchange
 */
async function chatCompletions({ res, body, b, stats, fault }) {
  const promptTokens = countPromptTokens(body);
  const id = `chatcmpl-mock-${stats.requests}`;
  const created = Math.floor(Date.now() / 1000);
  const base = { id, created, model: body.model };
  const toolCall =
    Array.isArray(body.tools) && body.tools.length > 0
      ? { id: "call_mock_1", type: "function", function: { name: body.tools[0].function?.name ?? "tool", arguments: '{"city":"Paris"}' } }
      : null;
  const words = b.words ? Array.from({ length: b.words }, (_, i) => WORDS[i % WORDS.length]) : WORDS;
  const completionTokens = toolCall ? 8 : words.length;
  record(stats, promptTokens, completionTokens);
  if (!body.stream) {
    const message = toolCall ? { role: "assistant", content: null, tool_calls: [toolCall] } : { role: "assistant", content: words.join(" ") };
    const answer = {
      ...base,
      object: "chat.completion",
      choices: [{ index: 0, message, finish_reason: toolCall ? "tool_calls" : "stop" }],
      ...(b.omitUsage ? {} : { usage: usage(promptTokens, completionTokens) }),
    };
    if (fault === "cut") {
      const text = JSON.stringify(answer);
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
      res.write(text.slice(0, text.length >> 1));
      await sleep(5);
      return void res.destroy();
    }
    if (!b.omitUsage && !res.destroyed) stats.reportedTokens += promptTokens + completionTokens;
    return sendJson(res, 200, answer, providerHeaders(b));
  }
  const sse = sseWriter(res, b, stats);
  /** @param {Record<string, unknown>} delta @param {string | null} [finish] */
  const chunk = (delta, finish = null) => ({ ...base, object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] });
  if (toolCall) {
    await sse.send(
      chunk({
        role: "assistant",
        content: null,
        tool_calls: [{ index: 0, id: toolCall.id, type: "function", function: { name: toolCall.function.name, arguments: "" } }],
      }),
    );
    for (const part of ['{"city":', '"Paris"}']) await sse.send(chunk({ tool_calls: [{ index: 0, function: { arguments: part } }] }));
    await sse.send(chunk({}, "tool_calls"));
  } else {
    const per = Math.max(1, b.wordsPerChunk ?? 1);
    for (let i = 0; i < words.length; i += per) {
      if (fault === "cut" && i >= words.length >> 1 && i - per < words.length >> 1) {
        await sleep(5); // let what was written reach the reader first: the answer has begun
        return void res.destroy();
      }
      const text = words.slice(i, i + per).join(" ");
      await sse.send(chunk(i === 0 ? { role: "assistant", content: text } : { content: ` ${text}` }));
      if (fault === "malformed" && i === 0) res.write("this line is no SSE field\n\n");
    }
    await sse.send(chunk({}, "stop"));
  }
  if (body.stream_options?.include_usage && !b.omitUsage && !res.destroyed) {
    stats.reportedTokens += promptTokens + completionTokens;
    await sse.send({ ...base, object: "chat.completion.chunk", choices: [], usage: usage(promptTokens, completionTokens) });
  }
  sse.end();
}

/**
 * Legacy completions.
 * @param {Exchange} exchange
 */
async function completions({ res, body, b, stats }) {
  const promptTokens = countPromptTokens(body);
  record(stats, promptTokens, WORDS.length);
  const base = { id: `cmpl-mock-${stats.requests}`, object: "text_completion", created: Math.floor(Date.now() / 1000), model: body.model };
  if (!body.stream) {
    return sendJson(res, 200, {
      ...base,
      choices: [{ index: 0, text: REPLY, finish_reason: "stop", logprobs: null }],
      ...(b.omitUsage ? {} : { usage: usage(promptTokens, WORDS.length) }),
    });
  }
  const sse = sseWriter(res, b, stats);
  for (let i = 0; i < WORDS.length; i++)
    await sse.send({ ...base, choices: [{ index: 0, text: (i ? " " : "") + WORDS[i], finish_reason: i === WORDS.length - 1 ? "stop" : null }] });
  if (body.stream_options?.include_usage && !b.omitUsage) await sse.send({ ...base, choices: [], usage: usage(promptTokens, WORDS.length) });
  sse.end();
}

/**
 * The Responses API: JSON, or its typed event stream ending in response.completed with usage.
 * @param {Exchange} exchange
 */
async function responses({ res, body, b, stats }) {
  const promptTokens = countPromptTokens(body);
  record(stats, promptTokens, WORDS.length);
  const u = {
    input_tokens: promptTokens,
    output_tokens: WORDS.length,
    total_tokens: promptTokens + WORDS.length,
    input_tokens_details: { cached_tokens: 0 },
    output_tokens_details: { reasoning_tokens: 0 },
  };
  /** @param {string} status @param {boolean} withOutput */
  const response = (status, withOutput) => ({
    id: `resp_mock_${stats.requests}`,
    object: "response",
    created_at: Math.floor(Date.now() / 1000),
    model: body.model,
    status,
    output: withOutput
      ? [{ id: "msg_mock", type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", text: REPLY, annotations: [] }] }]
      : [],
    ...(withOutput && !b.omitUsage ? { usage: u } : {}),
  });
  if (!body.stream) return sendJson(res, 200, response("completed", true));
  res.writeHead(200, { "content-type": "text/event-stream" });
  let n = 0;
  /** @param {string} type @param {Record<string, unknown>} extra */
  const send = async (type, extra) => {
    res.write(`event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: n++, ...extra })}\n\n`);
    if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
  };
  await send("response.created", { response: response("in_progress", false) });
  for (let i = 0; i < WORDS.length; i++)
    await send("response.output_text.delta", { item_id: "msg_mock", output_index: 0, content_index: 0, delta: (i ? " " : "") + WORDS[i] });
  await send("response.completed", { response: response("completed", true) });
  res.end();
}

/** @param {Exchange} exchange */
async function embeddings({ res, body, b, stats }) {
  const inputs = Array.isArray(body.input) ? body.input : [body.input];
  const promptTokens = countPromptTokens(body);
  record(stats, promptTokens, 0);
  // A stalled request whose caller gave up is answered into a closed socket: that usage never arrives.
  if (!b.omitUsage && !res.destroyed) stats.reportedTokens += promptTokens;
  return sendJson(res, 200, {
    object: "list",
    model: body.model,
    data: inputs.map((/** @type {unknown} */ _, /** @type {number} */ index) => ({
      object: "embedding",
      index,
      embedding: Array.from({ length: 8 }, (_, i) => (i + index) / 10),
    })),
    ...(b.omitUsage ? {} : { usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }),
  });
}

/** @param {Exchange} exchange */
async function moderations({ res, body }) {
  return sendJson(res, 200, {
    id: "modr-mock",
    model: body.model,
    results: [{ flagged: false, categories: { violence: false }, category_scores: { violence: 0.001 } }],
  });
}

/** @param {Exchange} exchange */
async function rerank({ res, body, stats }) {
  const documents = Array.isArray(body.documents) ? body.documents : [];
  const promptTokens = countPromptTokens({ input: [body.query, ...documents] });
  record(stats, promptTokens, 0);
  if (!res.destroyed) stats.reportedTokens += promptTokens;
  return sendJson(res, 200, {
    id: "rerank-mock",
    results: documents.map((/** @type {unknown} */ _, /** @type {number} */ index) => ({ index, relevance_score: 1 / (index + 1) })),
    meta: { tokens: { input_tokens: promptTokens, output_tokens: 0 } },
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  });
}

/** A 1×1 transparent PNG. */
const PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/** @param {Exchange} exchange */
async function images({ res }) {
  return sendJson(res, 200, { created: Math.floor(Date.now() / 1000), data: [{ b64_json: PNG_B64 }] });
}

/** @param {Exchange} exchange */
async function transcription({ res, body }) {
  return sendJson(res, 200, { text: `Mock transcription of ${body.fileBytes} bytes.` });
}

/**
 * Text to speech: binary audio, written in several chunks.
 * @param {Exchange} exchange
 */
async function speech({ res, b }) {
  res.writeHead(200, { "content-type": "audio/mpeg" });
  for (let i = 0; i < 4; i++) {
    res.write(Buffer.alloc(1024, i));
    if (b.chunkDelayMs) await sleep(b.chunkDelayMs);
  }
  res.end();
}

/** @type {Record<string, (exchange: Exchange) => Promise<void>>} */
const ENDPOINTS = {
  "/chat/completions": chatCompletions,
  "/completions": completions,
  "/responses": responses,
  "/embeddings": embeddings,
  "/moderations": moderations,
  "/rerank": rerank,
  "/images/generations": images,
  "/images/edits": images,
  "/audio/transcriptions": transcription,
  "/audio/translations": transcription,
  "/audio/speech": speech,
};

/**
 * Deterministic prompt token count: a quarter of the characters of every string in the input.
 * @param {RequestBody} body
 */
function countPromptTokens(body) {
  let chars = 0;
  /** @param {unknown} v */
  const walk = (v) => {
    if (typeof v === "string") chars += v.length;
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") Object.values(v).forEach(walk);
  };
  walk(body.messages ?? body.input ?? body.prompt ?? "");
  return Math.max(1, Math.ceil(chars / 4));
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A JSON answer with its length declared, as API servers send them.
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
function sendJson(res, status, body, headers = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** @param {string} message @param {string} type @param {string | null} code */
function errorBody(message, type, code) {
  return { error: { message, type, param: null, code } };
}

const DAY = 86_400_000;

/**
 * A duration the way OpenAI writes its resets (`1m2.5s`, `0.8s`, `120ms`),
 * rounded up to the millisecond so a client that trusts it is never early.
 * @param {number} ms
 */
function goDuration(ms) {
  const total = Math.max(1, Math.ceil(ms));
  if (total < 1000) return `${total}ms`;
  const minutes = Math.floor(total / 60_000);
  const seconds = (total % 60_000) / 1000;
  return minutes > 0 ? `${minutes}m${seconds}s` : `${seconds}s`;
}

/**
 * Checks a request against a key's limits and, if it fits, counts it. Returns
 * the 429 to answer (status, body, headers) or the headers to add to the answer.
 * @param {MockLimits} limits
 * @param {LimitState} state
 * @param {number} tokens the request's tokens (prompt and completion, known in advance here)
 * @param {string} model
 * @param {number} now
 * @returns {{ refuse: { body: unknown, headers: Record<string, string>, kind: "window" | "day", windowStart: number } | null, headers: Record<string, string> }}
 */
function applyLimits(limits, state, tokens, model, now) {
  const windowMs = limits.windowMs ?? 60_000;
  const windowStart = now - (now % windowMs);
  if (state.windowStart !== windowStart) Object.assign(state, { windowStart, requests: 0, tokens: 0 });
  const day = Math.floor(now / DAY);
  if (state.day !== day) Object.assign(state, { day, dayRequests: 0, dayTokens: 0 });
  const resetMs = windowStart + windowMs - now;
  /** @param {number} requests @param {number} used */
  const headers = (requests, used) =>
    limits.headers === true
      ? {
          ...(limits.requests !== undefined
            ? {
                "x-ratelimit-limit-requests": String(limits.requests),
                "x-ratelimit-remaining-requests": String(Math.max(0, limits.requests - requests)),
                "x-ratelimit-reset-requests": goDuration(resetMs),
              }
            : {}),
          ...(limits.tokens !== undefined
            ? {
                "x-ratelimit-limit-tokens": String(limits.tokens),
                "x-ratelimit-remaining-tokens": String(Math.max(0, limits.tokens - used)),
                "x-ratelimit-reset-tokens": goDuration(resetMs),
              }
            : {}),
        }
      : {};
  const untilTomorrow = (day + 1) * DAY - now;
  if (limits.dailyRequests !== undefined && state.dayRequests + 1 > limits.dailyRequests) {
    return {
      refuse: {
        kind: "day",
        windowStart: day * DAY,
        body: errorBody("You exceeded your current quota, please check your plan and billing details.", "insufficient_quota", "insufficient_quota"),
        headers: limits.headers ? { "retry-after": String(Math.ceil(untilTomorrow / 1000)) } : {},
      },
      headers: {},
    };
  }
  if (limits.dailyTokens !== undefined && state.dayTokens + tokens > limits.dailyTokens) {
    const message = `Rate limit reached for ${model} on tokens per day (TPD): Limit ${limits.dailyTokens}, Used ${state.dayTokens}, Requested ${tokens}.`;
    return {
      refuse: {
        kind: "day",
        windowStart: day * DAY,
        body: errorBody(message, "tokens", "rate_limit_exceeded"),
        headers: limits.headers ? { "retry-after": String(Math.ceil(untilTomorrow / 1000)) } : {},
      },
      headers: {},
    };
  }
  const overRequests = limits.requests !== undefined && state.requests + 1 > limits.requests;
  const overTokens = limits.tokens !== undefined && state.tokens + tokens > limits.tokens;
  if (overRequests || overTokens) {
    const [what, unit, limit, used] = overRequests ? ["requests", "RPM", limits.requests, state.requests] : ["tokens", "TPM", limits.tokens, state.tokens];
    const message = `Rate limit reached for ${model} on ${what} per min (${unit}): Limit ${limit}, Used ${used}, Requested ${overRequests ? 1 : tokens}. Please try again in ${goDuration(resetMs)}.`;
    return {
      refuse: {
        kind: "window",
        windowStart,
        body: errorBody(message, what, "rate_limit_exceeded"),
        headers: limits.headers ? { ...headers(state.requests, state.tokens), "retry-after": String(Math.ceil(resetMs / 1000)) } : {},
      },
      headers: {},
    };
  }
  state.requests++;
  state.tokens += tokens;
  state.dayRequests++;
  state.dayTokens += tokens;
  return { refuse: null, headers: headers(state.requests, state.tokens) };
}

/**
 * Starts the mock on `port` (0: any free port) at 127.0.0.1; `seed` seeds the fault draws.
 * @param {{ port?: number, seed?: number }} [options]
 */
export async function startMockUpstream(options = {}) {
  /** @type {Map<string, KeyBehavior>} */
  const behaviors = new Map();
  /** @type {MockStats} */
  const stats = {
    requests: 0,
    byKey: /** @type {Record<string, number>} */ ({}),
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    reportedTokens: 0,
    cancelledStreams: 0,
    faults: /** @type {Record<string, number>} */ ({}),
    /** How many requests carried each header name (lower case): shows which headers a gateway forwards. */
    headerNames: /** @type {Record<string, number>} */ ({}),
    lastBody: /** @type {unknown} */ (null),
    /** 429s the mock's enforced limits answered: a window's, a day's; and by key, by the start of the window refused. */
    limited: { window: 0, day: 0 },
    limitedByKey: /** @type {MockStats["limitedByKey"]} */ ({}),
    /** Per key under limits: requests and tokens served, and the most in one window. */
    served: /** @type {MockStats["served"]} */ ({}),
  };
  /** @type {Map<string, LimitState>} */
  const limitStates = new Map();
  const random = seeded(options.seed ?? 1);

  const server = http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url ?? "/", "http://mock");
      /** @type {Buffer[]} */
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const rawBytes = Buffer.concat(chunks);
      const raw = rawBytes.toString("utf8");

      if (url.pathname === "/__mock/keys" && req.method === "POST") {
        const { key, ...behavior } = JSON.parse(raw);
        behaviors.set(key, behavior);
        limitStates.delete(key);
        return sendJson(res, 200, { ok: true });
      }
      if (url.pathname === "/__mock/stats") return sendJson(res, 200, stats);
      if (url.pathname === "/__mock/reset" && req.method === "POST") {
        behaviors.clear();
        Object.assign(stats, {
          requests: 0,
          byKey: {},
          promptTokens: 0,
          completionTokens: 0,
          totalTokens: 0,
          reportedTokens: 0,
          cancelledStreams: 0,
          faults: {},
          headerNames: {},
          lastBody: null,
          limited: { window: 0, day: 0 },
          limitedByKey: {},
          served: {},
        });
        limitStates.clear();
        return sendJson(res, 200, { ok: true });
      }

      const key = (req.headers.authorization ?? "").replace(/^Bearer\s+/i, "");
      if (!key) return sendJson(res, 401, errorBody("Missing API key.", "authentication_error", "invalid_api_key"));
      stats.requests++;
      for (const name of Object.keys(req.headers)) stats.headerNames[name] = (stats.headerNames[name] ?? 0) + 1;
      stats.byKey[key] = (stats.byKey[key] ?? 0) + 1;
      const b = behaviors.get(key) ?? behaviors.get("*") ?? {};
      const fault = b.faultRate && random() < b.faultRate ? FAULTS[Math.floor(random() * FAULTS.length)] : null;
      if (fault) stats.faults[fault] = (stats.faults[fault] ?? 0) + 1;
      if (b.delayMs) await sleep(b.delayMs);
      if (fault === "stall") await sleep(b.stallMs ?? 30_000);
      if (fault === "rate_limit")
        return sendJson(res, 429, errorBody("Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"), { "retry-after": "1" });
      if (fault === "server_error") return sendJson(res, 500, errorBody("The upstream had an error.", "server_error", null));
      if (fault === "reset") return void req.socket.destroy();
      switch (b.mode ?? "ok") {
        case "rate_limit":
          return sendJson(res, 429, errorBody("Rate limit reached.", "rate_limit_error", "rate_limit_exceeded"), {
            "retry-after": String(b.retryAfterSeconds ?? 20),
          });
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
      const multipart = (req.headers["content-type"] ?? "").startsWith("multipart/form-data");
      const body = multipart ? await readForm(req, rawBytes) : raw ? JSON.parse(raw) : {};
      if (typeof body.model !== "string") return sendJson(res, 400, errorBody("You must provide a model parameter.", "invalid_request_error", null));
      if (body.model === "unknown-model")
        return sendJson(res, 404, errorBody(`The model '${body.model}' does not exist.`, "invalid_request_error", "model_not_found"));
      stats.lastBody = multipart ? { model: body.model, fileBytes: body.fileBytes } : body;
      const handler = ENDPOINTS[path];
      if (handler && b.limits) {
        const tokens = countPromptTokens(body) + (path === "/chat/completions" ? (b.words ?? WORDS.length) : 0);
        let state = limitStates.get(key);
        if (!state) limitStates.set(key, (state = { windowStart: 0, requests: 0, tokens: 0, day: 0, dayRequests: 0, dayTokens: 0 }));
        const checked = applyLimits(b.limits, state, tokens, body.model, Date.now());
        if (checked.refuse) {
          stats.limited[checked.refuse.kind]++;
          const byWindow = (stats.limitedByKey[key] ??= {});
          byWindow[checked.refuse.windowStart] = (byWindow[checked.refuse.windowStart] ?? 0) + 1;
          return sendJson(res, 429, checked.refuse.body, checked.refuse.headers);
        }
        const served = (stats.served[key] ??= { requests: 0, tokens: 0, maxWindowRequests: 0, maxWindowTokens: 0 });
        served.requests++;
        served.tokens += tokens;
        served.maxWindowRequests = Math.max(served.maxWindowRequests, state.requests);
        served.maxWindowTokens = Math.max(served.maxWindowTokens, state.tokens);
        for (const [name, value] of Object.entries(checked.headers)) res.setHeader(name, value);
      }
      if (handler) return await handler({ req, res, body, b, stats, fault: fault ?? null });
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

/**
 * Reads a multipart body (Node's fetch implementation parses it): the fields, and the file's size.
 * @param {http.IncomingMessage} req
 * @param {Buffer} rawBytes
 */
async function readForm(req, rawBytes) {
  const form = await new Request("http://mock/", {
    method: "POST",
    headers: { "content-type": req.headers["content-type"] ?? "" },
    body: new Uint8Array(rawBytes),
  }).formData();
  // Audio uploads name the file `file`; image edits `image` (or `image[]` for several).
  const file = ["file", "image", "image[]"].map((name) => form.get(name)).find((v) => v && typeof v === "object");
  return { model: form.get("model"), fileBytes: file && typeof file === "object" ? file.size : 0, stream: form.get("stream") === "true" };
}

/** @param {number} promptTokens @param {number} completionTokens */
function usage(promptTokens, completionTokens) {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/** @param {MockStats} stats @param {number} promptTokens @param {number} completionTokens */
function record(stats, promptTokens, completionTokens) {
  stats.promptTokens += promptTokens;
  stats.completionTokens += completionTokens;
  stats.totalTokens += promptTokens + completionTokens;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const mock = await startMockUpstream({ port: Number(process.env.MOCK_PORT ?? 8790) });
  console.log(`mock upstream listening: ${mock.baseUrl}`);
}
