import { EVENT_VERSION, providerKinds, type AttemptEvent, type Outcome, type SnapshotClientKey } from "../schema";
import { KeypoolError } from "./errors";
import { classifyNetworkError, classifyResponse, parseRetryAfter, type Verdict } from "./logic/failure-policy";
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
      console.error(`keypool: key ${key.id} cannot be decrypted with the current KEY_ENCRYPTION_KEY`);
      deps.observations.block(key.id, ctx.now + 10 * 60_000);
      n--;
      continue;
    }

    const started = deps.now();
    const done = deps.observations.begin(key.id);
    const controller = new AbortController();
    const onClientAbort = () => controller.abort();
    req.signal.addEventListener("abort", onClientAbort);
    const timer = setTimeout(() => controller.abort(), settings.attemptTimeoutMs);
    let res: Response;
    try {
      res = await deps.fetch(upstream.baseUrl + req.endpoint + req.search, {
        method: req.method,
        headers: upstreamRequestHeaders(req.headers, kind.authHeader, kind.authPrefix + secret),
        body: req.body,
        signal: controller.signal,
      });
    } catch {
      clearTimeout(timer);
      req.signal.removeEventListener("abort", onClientAbort);
      done();
      const aborted = req.signal.aborted;
      const verdict: Verdict = aborted ? { outcome: "aborted", retry: false, blockMs: 0 } : classifyNetworkError();
      attempts.push({ startedAt: started, keyId: key.id, upstreamId: upstream.id, status: 0, outcome: verdict.outcome, latencyMs: deps.now() - started, ttfbMs: null, usage: null, retryAfterMs: null });
      if (verdict.blockMs > 0) deps.observations.block(key.id, deps.now() + verdict.blockMs);
      if (aborted) {
        deps.waitUntil(emit());
        return new Response(null, { status: 499 });
      }
      lastFailure = "unreachable";
      continue;
    }
    clearTimeout(timer);
    const ttfbMs = deps.now() - started;
    const retryAfterMs = parseRetryAfter(res.headers.get("retry-after"), deps.now());

    if (res.ok && res.body) {
      const [toClient, toMeter] = res.body.tee();
      const record: AttemptRecord = { startedAt: started, keyId: key.id, upstreamId: upstream.id, status: res.status, outcome: "ok", latencyMs: 0, ttfbMs, usage: null, retryAfterMs };
      attempts.push(record);
      deps.waitUntil(
        meterBody(toMeter, res.headers.get("content-type"))
          .catch(() => {
            record.outcome = req.signal.aborted ? "aborted" : "network_error";
            return null;
          })
          .then((usage) => {
            record.usage = usage;
            record.latencyMs = deps.now() - started;
          })
          .finally(() => {
            req.signal.removeEventListener("abort", onClientAbort);
            done();
            return emit();
          }),
      );
      return new Response(toClient, { status: res.status, headers: clientResponseHeaders(res.headers, requestId, n) });
    }

    const text = await res.text().catch(() => "");
    req.signal.removeEventListener("abort", onClientAbort);
    done();
    const verdict = classifyResponse(res.status, retryAfterMs, text.slice(0, 4096));
    attempts.push({ startedAt: started, keyId: key.id, upstreamId: upstream.id, status: res.status, outcome: verdict.outcome, latencyMs: deps.now() - started, ttfbMs, usage: null, retryAfterMs });
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
