import { EVENT_VERSION, providerKinds, type AttemptEvent, type Outcome, type SnapshotClientKey } from "../schema";
import { KeypoolError } from "./errors";
import { classifyNetworkError, classifyResponse, parseRetryAfter } from "./logic/failure-policy";
import { clientResponseHeaders, upstreamRequestHeaders } from "./logic/headers";
import type { LocalObservations } from "./logic/local-observations";
import { meterBody } from "./logic/meter";
import type { SecretCache } from "./logic/secrets";
import { explainNoKey, selectKey } from "./logic/select-key";
import { NO_USAGE, type Usage } from "./logic/usage";
import type { EventSink } from "./storage/event-sink";
import type { LoadedPool } from "./storage/snapshot-cache";

/** Everything the proxy needs from the outside world, injected so tests control it. */
export interface ProxyDeps {
  fetch: typeof fetch;
  now: () => number;
  random: () => number;
  newId: () => string;
  sink: EventSink;
  waitUntil: (p: Promise<unknown>) => void;
  secrets: SecretCache;
  observations: LocalObservations;
}

/** One client request, already authenticated and read. */
export interface ProxyRequest {
  pool: LoadedPool;
  client: SnapshotClientKey;
  /** The path after `/v1`, e.g. `/chat/completions`. */
  endpoint: string;
  /** The query string, with its `?`, or empty. */
  search: string;
  method: string;
  headers: Headers;
  /** The body bytes, kept so a retry on another key can send them again. */
  body: ArrayBuffer | null;
  model: string;
  stream: boolean;
  signal: AbortSignal;
}

interface AttemptRecord {
  startedAt: number;
  keyId: string;
  upstreamId: string;
  status: number;
  outcome: Outcome;
  latencyMs: number;
  ttfbMs: number | null;
  usage: Usage | null;
  retryAfterMs: number | null;
}

/** One upstream call: its response (headers arrived) or why there is none. */
type Sent =
  | { kind: "response"; res: Response; started: number; ttfbMs: number; finish: () => void }
  | { kind: "failed"; aborted: boolean; started: number };

/**
 * Sends the request with one key. The attempt timeout covers only the wait for the
 * response headers; a client abort cancels the upstream call at any point until
 * `finish()` is called.
 */
async function sendAttempt(req: ProxyRequest, url: string, headers: Headers, timeoutMs: number, deps: ProxyDeps, keyId: string): Promise<Sent> {
  const started = deps.now();
  const done = deps.observations.begin(keyId);
  const controller = new AbortController();
  const onClientAbort = () => controller.abort();
  req.signal.addEventListener("abort", onClientAbort);
  const finish = () => {
    req.signal.removeEventListener("abort", onClientAbort);
    done();
  };
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await deps.fetch(url, { method: req.method, headers, body: req.body, signal: controller.signal });
    return { kind: "response", res, started, ttfbMs: deps.now() - started, finish };
  } catch {
    finish();
    return { kind: "failed", aborted: req.signal.aborted, started };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Forwards a request to the pool: picks a key, sends, and on a failure the policy
 * calls retryable, tries another key, up to the configured attempts. A success or
 * a client error is streamed back unchanged; the attempts go to the event sink once
 * the answer's usage is known.
 */
export async function proxyRequest(req: ProxyRequest, deps: ProxyDeps): Promise<Response> {
  const { pool, model } = req;
  const { settings } = pool.snapshot;
  const requestId = deps.newId();
  const attempts: AttemptRecord[] = [];
  const tried = new Set<string>();
  const emit = () => deps.sink(attempts.map((a, i) => toEvent(req, requestId, a, i, i === attempts.length - 1, deps)));
  // The answer to give if no attempt succeeds: the last upstream error, or "unreachable".
  let lastFailure: { status: number; headers: Headers; text: string } | "unreachable" | null = null;

  for (let n = 1; n <= settings.maxAttempts; n++) {
    const ctx = { now: deps.now(), random: deps.random, excluded: tried, observations: deps.observations };
    const key = selectKey(pool.index, model, ctx);
    if (!key) {
      if (lastFailure) break;
      throw noKeyError(explainNoKey(pool.index, model, ctx), model, ctx.now);
    }
    tried.add(key.id);
    const upstream = pool.index.upstreams.get(key.upstreamId)!;
    const kind = providerKinds[upstream.kind];
    let secret: string;
    try {
      secret = await deps.secrets.decrypt(key.secret);
    } catch {
      // Counts as an attempt: a wrong KEY_ENCRYPTION_KEY must not make one request walk the whole pool.
      console.error(`keypool: key ${key.id} cannot be decrypted with the current KEY_ENCRYPTION_KEY`);
      deps.observations.block(key.id, ctx.now + 10 * 60_000);
      continue;
    }

    const headers = upstreamRequestHeaders(req.headers, kind.authHeader, kind.authPrefix + secret);
    const sent = await sendAttempt(req, upstream.baseUrl + req.endpoint + req.search, headers, settings.attemptTimeoutMs, deps, key.id);
    const record: AttemptRecord = { startedAt: sent.started, keyId: key.id, upstreamId: upstream.id, status: 0, outcome: "ok", latencyMs: 0, ttfbMs: null, usage: null, retryAfterMs: null };
    attempts.push(record);

    if (sent.kind === "failed") {
      record.latencyMs = deps.now() - sent.started;
      record.outcome = sent.aborted ? "aborted" : "network_error";
      if (sent.aborted) {
        deps.waitUntil(emit());
        return new Response(null, { status: 499 });
      }
      deps.observations.block(key.id, deps.now() + classifyNetworkError().blockMs);
      lastFailure = "unreachable";
      continue;
    }

    const { res } = sent;
    record.status = res.status;
    record.ttfbMs = sent.ttfbMs;
    record.retryAfterMs = parseRetryAfter(res.headers.get("retry-after"), deps.now());
    if (res.ok) {
      const responseHeaders = clientResponseHeaders(res.headers, requestId, attempts.length);
      if (!res.body) {
        // A bodiless success (204): nothing to meter or stream.
        sent.finish();
        record.latencyMs = deps.now() - sent.started;
        deps.waitUntil(emit());
        return new Response(null, { status: res.status, headers: responseHeaders });
      }
      const [toClient, toMeter] = res.body.tee();
      deps.waitUntil(
        meterBody(toMeter, res.headers.get("content-type"))
          .catch(() => {
            record.outcome = req.signal.aborted ? "aborted" : "network_error";
            return null;
          })
          .then((usage) => {
            record.usage = usage;
            record.latencyMs = deps.now() - sent.started;
            sent.finish();
            return emit();
          }),
      );
      return new Response(toClient, { status: res.status, headers: responseHeaders });
    }

    const text = await res.text().catch(() => "");
    sent.finish();
    const verdict = classifyResponse(res.status, record.retryAfterMs, text.slice(0, 4096));
    record.outcome = verdict.outcome;
    record.latencyMs = deps.now() - sent.started;
    if (verdict.blockMs > 0) deps.observations.block(key.id, deps.now() + verdict.blockMs);
    lastFailure = { status: res.status, headers: res.headers, text };
    if (!verdict.retry) break;
  }

  deps.waitUntil(emit());
  if (!lastFailure) throw new KeypoolError(503, "server_error", `No upstream key could serve model '${model}'.`, "no_available_key");
  if (lastFailure === "unreachable") {
    throw new KeypoolError(502, "server_error", "The upstream could not be reached with any key.", "upstream_unreachable");
  }
  return new Response(lastFailure.text, { status: lastFailure.status, headers: clientResponseHeaders(lastFailure.headers, requestId, attempts.length) });
}

function noKeyError(why: ReturnType<typeof explainNoKey>, model: string, now: number): KeypoolError {
  if (why.kind === "cooling") {
    const seconds = Math.max(1, Math.ceil((why.until - now) / 1000));
    return new KeypoolError(429, "rate_limit_error", `Every key for model '${model}' is cooling down; retry in ${seconds}s.`, "all_keys_cooling", null, {
      "retry-after": String(seconds),
    });
  }
  return new KeypoolError(503, "server_error", `No enabled upstream key serves model '${model}'.`, "no_key_for_model", "model");
}

function toEvent(req: ProxyRequest, requestId: string, a: AttemptRecord, index: number, final: boolean, deps: ProxyDeps): AttemptEvent {
  const usage = a.usage ?? NO_USAGE;
  return {
    v: EVENT_VERSION,
    type: "attempt",
    id: deps.newId(),
    ts: a.startedAt,
    requestId,
    attempt: index + 1,
    final,
    keyId: a.keyId,
    upstreamId: a.upstreamId,
    clientKeyId: req.client.id,
    model: req.model.slice(0, 200),
    endpoint: req.endpoint.slice(0, 100),
    stream: req.stream,
    status: a.status,
    outcome: a.outcome,
    latencyMs: a.latencyMs,
    ttfbMs: a.ttfbMs,
    promptTokens: usage.promptTokens,
    completionTokens: usage.completionTokens,
    totalTokens: usage.totalTokens,
    usageSource: a.usage ? "upstream" : "none",
    retryAfterMs: a.retryAfterMs,
  };
}
