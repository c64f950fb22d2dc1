import {
  DEFAULT_DAY,
  EVENT_VERSION,
  MINUTE_MS,
  effectiveLimits,
  keptInRequestLog,
  nextDayReset,
  providerKinds,
  type AttemptEvent,
  type CapturedBody,
  type KeptBodies,
  type Outcome,
  type RateLimitReading,
  type SnapshotClientKey,
  type SnapshotKey,
} from "../schema";
import { KeypoolError } from "./errors";
import { classifyNetworkError, classifyResponse, type Verdict } from "./logic/failure-policy";
import { captureBytes, keptBodies, readCapped } from "./logic/body-capture";
import { errorExcerpt } from "./logic/error-excerpt";
import { clientResponse, upstreamRequestHeaders } from "./logic/headers";
import { readRateLimitHeaders, readRetryAfterMs } from "./logic/rate-limit-headers";
import type { LocalObservations } from "./logic/local-observations";
import { meterWholeBody, readsWhole, relayBody, type RelayResult } from "./logic/relay";
import { smoothStream } from "./logic/smooth";
import { bodyForUpstream, requestedCompletionTokens, type ClientBody } from "./logic/request-body";
import type { SecretCache } from "./logic/secrets";
import type { Need, SendCount } from "./logic/capacity";
import { explainNoKey, selectKey, tracksCapacity, type PoolIndex } from "./logic/select-key";
import type { Usage } from "./logic/usage";
import type { EventSink } from "./storage/event-sink";
import type { LoadedPool } from "./storage/snapshot-cache";

/** Everything the proxy needs from the outside world, injected so tests control it. */
export interface ProxyDeps {
  fetch: typeof fetch;
  now: () => number;
  random: () => number;
  sleep: (ms: number) => Promise<void>;
  newId: () => string;
  sink: EventSink;
  waitUntil: (p: Promise<unknown>) => void;
  secrets: SecretCache;
  observations: LocalObservations;
  /** Told the attempts of a finished request (the client's quotas count its tokens and cost). */
  settle: (events: AttemptEvent[]) => void;
  /** Sends a request's kept bodies on (only called when the request asked for them to be kept). */
  sendBodies?: (bodies: KeptBodies) => Promise<void>;
}

/** One client request, already authenticated and read. */
export interface ProxyRequest {
  pool: LoadedPool;
  client: SnapshotClientKey;
  body: ClientBody;
  /** The query string, with its `?`, or empty. */
  search: string;
  headers: Headers;
  /** Estimates the prompt's tokens; called only if the upstream reports no usage. */
  promptEstimate: () => number;
  signal: AbortSignal;
  /** Keep this request's and its answer's bodies (at most `maxBytes` each), without `secrets` (the client's key) or any key used; null: keep none. */
  keepBodies?: { maxBytes: number; secrets: string[] } | null;
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
  estimated: boolean;
  retryAfterMs: number | null;
  /** What the answer's rate-limit headers said of the key, if anything. */
  rateLimit: RateLimitReading | null;
  /** Tokens charged to the key's capacity when the attempt was sent (an estimate), or null when its capacity is not tracked. */
  charged: number | null;
  /** The model name sent upstream where an alias changed it. */
  upstreamModel: string | null;
  /** The upstream's refusal (redacted), or why there was no answer. */
  error: string | null;
}

/** One upstream call: its response (headers arrived) or why there is none. */
type Sent = { kind: "response"; res: Response; ttfbMs: number; finish: () => void } | { kind: "failed"; aborted: boolean };

/**
 * Sends the request with one key. The timeout covers only the wait for the
 * response headers; a client abort cancels the upstream call until `finish()`.
 */
async function sendAttempt(
  req: ProxyRequest,
  url: string,
  init: RequestInit,
  timeoutMs: number,
  deps: ProxyDeps,
  keyId: string,
  started: number,
  done: () => void,
): Promise<Sent> {
  const controller = new AbortController();
  const onClientAbort = () => controller.abort();
  req.signal.addEventListener("abort", onClientAbort);
  const finish = () => {
    req.signal.removeEventListener("abort", onClientAbort);
    done();
  };
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await deps.fetch(url, { ...init, signal: controller.signal });
    // A success ends a trial at once; a refusal ends it once read, with the key blocked again.
    if (res.ok) deps.observations.answered(keyId);
    return { kind: "response", res, ttfbMs: deps.now() - started, finish };
  } catch {
    finish();
    return { kind: "failed", aborted: req.signal.aborted };
  } finally {
    clearTimeout(timer);
  }
}

/** Usage for the event: the upstream's, else an estimate from the prompt and the text seen. */
function settleUsage(record: AttemptRecord, result: RelayResult, estimatePrompt: () => number): void {
  if (result.usage) {
    record.usage = result.usage;
    return;
  }
  const promptEstimate = estimatePrompt();
  const completionTokens = result.completionEstimate;
  record.usage = { promptTokens: promptEstimate, completionTokens, totalTokens: promptEstimate + completionTokens, cachedTokens: 0, reasoningTokens: 0 };
  record.estimated = true;
}

/**
 * Forwards a request to the pool: picks a key, sends, and on a failure the policy
 * calls retryable, tries another key, within the attempt budget and the deadline.
 * When every key is cooling it waits for the first to recover if that is soon
 * enough. A success or a client error is relayed unchanged; the attempts go to
 * the event sink once the answer's usage is known.
 */
export async function proxyRequest(req: ProxyRequest, deps: ProxyDeps): Promise<Response> {
  const { pool, body } = req;
  const { settings } = pool.snapshot;
  const requestId = deps.newId();
  const deadline = deps.now() + settings.requestDeadlineMs;
  const attempts: AttemptRecord[] = [];
  const tried = new Set<string>();
  // Kept bodies, when asked for: the request's now, the answer's as it is read (a promise, for a stream read beside the relay).
  const keep = req.keepBodies ?? null;
  const usedSecrets: string[] = [];
  let answerBody: Promise<CapturedBody | null> | CapturedBody | null = null;
  const requestBody = keep ? captureBytes(new Uint8Array(body.bytes), body.contentType, keep.maxBytes) : null;
  const emit = () => {
    const now = deps.now();
    // Decided once for the request, with every attempt known: the log keeps all of its attempts or none, and its bodies with them.
    const logged = keptInRequestLog(requestId, attempts, settings.requestLogSample);
    if (logged && keep && requestBody && deps.sendBodies) {
      const send = deps.sendBodies;
      const started = attempts[0]?.startedAt ?? now;
      deps.waitUntil(
        Promise.resolve(answerBody)
          .then((answer) => send(keptBodies(requestId, started, requestBody, answer, [...keep.secrets, ...usedSecrets])))
          .catch((err: unknown) => console.error(`keypool: a request's bodies could not be kept: ${err instanceof Error ? err.message : "error"}`)),
      );
    }
    // What each attempt really used, in place of its estimate, for the keys whose capacity this isolate counts.
    for (const a of attempts) if (a.charged !== null) deps.observations.capacity.adjust(a.keyId, (a.usage?.totalTokens ?? 0) - a.charged, now);
    const events = attempts.map((a, i) => toEvent(req, requestId, a, i, i === attempts.length - 1, logged, deps));
    deps.settle(events);
    return deps.sink(events);
  };
  // The answer to give if no attempt succeeds: the last upstream error, or "unreachable".
  let lastFailure: { status: number; headers: Headers; text: string } | "unreachable" | null = null;
  /** Records an attempt that got no usable answer: true if the client left, else the key did not answer. */
  const noAnswer = (record: AttemptRecord, aborted: boolean): boolean => {
    record.latencyMs = deps.now() - record.startedAt;
    record.outcome = aborted ? "aborted" : "network_error";
    record.error = aborted ? "the client left before the answer" : "no answer from the upstream (network error or timeout)";
    if (!aborted) hold(deps.observations, record.keyId, classifyNetworkError(), deps.now());
    return aborted;
  };

  // What the request needs of a key's token windows: asked only when a candidate has some.
  let needed: Need | null = null;
  const need = () => (needed ??= { tokens: req.promptEstimate() + requestedCompletionTokens(body.json) });

  for (let budget = settings.maxAttempts; budget > 0 && !req.signal.aborted;) {
    const ctx = { now: deps.now(), random: deps.random, excluded: tried, observations: deps.observations, usage: pool.usage, need };
    // Keys this isolate merely avoids (a recent 5xx or network error) are the fallback, not out.
    const key = selectKey(pool.index, body.model, ctx) ?? selectKey(pool.index, body.model, { ...ctx, includeAvoided: true });
    if (!key) {
      const why = explainNoKey(pool.index, body.model, { ...ctx, includeAvoided: true });
      const wait = why.kind === "cooling" ? why.until - ctx.now : Infinity;
      if (wait <= settings.coolingWaitMs && ctx.now + wait < deadline) {
        // Every untried candidate is cooling but one recovers soon (also after failed attempts,
        // while the attempt budget lasts): wait for it, with a little jitter.
        await deps.sleep(wait + Math.floor(deps.random() * 50));
        continue;
      }
      if (lastFailure) break;
      throw noKeyError(why, body.model, ctx.now);
    }
    budget--;
    tried.add(key.id);
    // In flight and counted against the key's windows from the moment it is chosen, before anything
    // awaits: requests choosing meanwhile see it (a key on trial takes one, a nearly full window fills).
    const release = deps.observations.begin(key.id, ctx.now);
    let sentWith: SendCount | undefined;
    const charged = tracksCapacity(pool.index, key, ctx) ? ((needed as Need | null)?.tokens ?? 0) : null;
    if (charged !== null) sentWith = deps.observations.capacity.record(key.id, charged, ctx.now);
    const upstream = pool.index.upstreams.get(key.upstreamId)!;
    const kind = providerKinds[upstream.kind];
    let secret: string;
    try {
      secret = await deps.secrets.decrypt(key.secret);
      if (keep) usedSecrets.push(secret);
    } catch {
      release();
      console.error(`keypool: key ${key.id} cannot be decrypted with the current KEY_ENCRYPTION_KEY`);
      deps.observations.block(key.id, ctx.now + 10 * 60_000);
      continue;
    }

    let outgoing: Awaited<ReturnType<typeof bodyForUpstream>>;
    try {
      outgoing = await bodyForUpstream(body, upstream);
    } catch (err) {
      release();
      throw err;
    }
    const headers = upstreamRequestHeaders(req.headers, kind.authHeader, kind.authPrefix + secret);
    if (outgoing.contentType) headers.set("content-type", outgoing.contentType);
    const started = deps.now();
    const timeout = Math.max(1, Math.min(settings.attemptTimeoutMs, deadline - started));
    const sent = await sendAttempt(
      req,
      upstream.baseUrl + body.endpoint + req.search,
      { method: "POST", headers, body: outgoing.body },
      timeout,
      deps,
      key.id,
      started,
      release,
    );
    const record: AttemptRecord = {
      startedAt: started,
      keyId: key.id,
      upstreamId: upstream.id,
      status: 0,
      outcome: "ok",
      latencyMs: 0,
      ttfbMs: null,
      usage: null,
      estimated: false,
      retryAfterMs: null,
      rateLimit: null,
      // The estimate if selection already made one, else nothing until the answer says what was used.
      charged,
      upstreamModel: upstream.aliases[body.model] ?? null,
      error: null,
    };
    attempts.push(record);

    if (sent.kind === "failed") {
      if (noAnswer(record, sent.aborted)) break;
      lastFailure = "unreachable";
      continue;
    }

    const { res } = sent;
    record.status = res.status;
    record.ttfbMs = sent.ttfbMs;
    record.retryAfterMs = readRetryAfterMs(res.headers, deps.now());
    record.rateLimit = settings.learnLimits ? readRateLimitHeaders(res.headers, deps.now()) : null;
    if (record.rateLimit) deps.observations.capacity.learn(key.id, record.rateLimit, deps.now(), sentWith);
    if (res.ok) {
      const onEnd = (result: RelayResult) => {
        if (result.aborted) record.outcome = "aborted";
        else if (result.failed) record.outcome = "network_error";
        settleUsage(record, result, req.promptEstimate);
        record.latencyMs = deps.now() - started;
        sent.finish();
        deps.waitUntil(emit());
      };
      if (!res.body) {
        onEnd({ usage: null, completionEstimate: 0, aborted: false, failed: false });
        return clientResponse(null, res.status, res.headers, requestId, attempts.length);
      }
      const declared = Number(res.headers.get("content-length") ?? Number.NaN);
      const contentLength = Number.isSafeInteger(declared) && declared >= 0 ? declared : null;
      const contentType = res.headers.get("content-type");
      if (!outgoing.dropUsageChunk && readsWhole(contentType, contentLength)) {
        // A small JSON answer: read whole, so one that breaks off can go to another key.
        let bytes: ArrayBuffer;
        try {
          bytes = await res.arrayBuffer();
        } catch {
          sent.finish();
          // workerd fails a leaving client's pending reads too: that is the client, not the key.
          if (noAnswer(record, req.signal.aborted)) break;
          lastFailure = "unreachable";
          continue;
        }
        if (keep) answerBody = captureBytes(new Uint8Array(bytes), contentType, keep.maxBytes);
        onEnd({ ...meterWholeBody(bytes), aborted: false, failed: false });
        return clientResponse(bytes, res.status, res.headers, requestId, attempts.length);
      }
      let upstreamBody = res.body;
      if (keep) {
        // Read beside the relay, up to the cap: the client's stream is not held up by it.
        const [forClient, forLog] = res.body.tee();
        upstreamBody = forClient;
        const cap = keep.maxBytes;
        answerBody = readCapped(forLog, cap).then(({ bytes, total }) => captureBytes(bytes, contentType, cap, total));
      }
      const relayed = relayBody(upstreamBody, {
        contentType,
        contentLength,
        dropUsageChunk: outgoing.dropUsageChunk,
        signal: req.signal,
        onEnd,
      });
      deps.waitUntil(relayed.metered);
      // Smoothed only when this client (or the pool, for a client that does not say) asked for it: off costs nothing.
      const smooth =
        body.stream &&
        body.endpoint === "/chat/completions" &&
        (req.client.smoothStreams ?? settings.smoothStreams) &&
        contentType?.includes("text/event-stream");
      return clientResponse(smooth ? smoothStream(relayed.body) : relayed.body, res.status, res.headers, requestId, attempts.length);
    }

    const text = await res.text().catch(() => "");
    sent.finish();
    record.error = errorExcerpt(text);
    if (keep) answerBody = captureBytes(new TextEncoder().encode(text), res.headers.get("content-type"), keep.maxBytes);
    const verdict = classifyResponse(res.status, record.retryAfterMs, text.slice(0, 4096), settings.defaultCooldownMs);
    record.outcome = verdict.outcome;
    record.latencyMs = deps.now() - started;
    if (verdict.quota) {
      // Spent until the provider's reset: the pool (through the event) and this isolate cool the key until then.
      const until = quotaResetAt(record, pool.index, key, deps.now());
      verdict.blockMs = Math.max(0, until - deps.now());
      record.retryAfterMs = Math.max(0, until - record.startedAt);
    }
    if (verdict.outcome === "rate_limited" && !verdict.quota && settings.learnLimits && !record.rateLimit?.requests) {
      // Refused with nothing said of the window: take what was sent with the key this minute, less this one,
      // as its limit per minute from when the window resets (the Retry-After, else the next minute).
      const now = deps.now();
      const limit = Math.max(1, deps.observations.sentThisMinute(key.id, now) - 1);
      const resetMs = record.retryAfterMs ?? MINUTE_MS - (now % MINUTE_MS);
      deps.observations.capacity.learn(key.id, { requests: { limit, remaining: 0, resetMs }, tokens: null }, now, sentWith, MINUTE_MS);
    }
    hold(deps.observations, key.id, verdict, deps.now());
    lastFailure = { status: res.status, headers: res.headers, text };
    if (!verdict.retry) break;
  }

  deps.waitUntil(emit());
  if (req.signal.aborted) return new Response(null, { status: 499 });
  if (!lastFailure) throw new KeypoolError(503, "server_error", `No upstream key could serve model '${body.model}'.`, "no_available_key");
  if (lastFailure === "unreachable") {
    throw new KeypoolError(502, "server_error", "The upstream could not be reached with any key.", "upstream_unreachable");
  }
  let headers = lastFailure.headers;
  if (lastFailure.status === 429) {
    // The last key's Retry-After speaks for that key; the client needs to know when the pool has room again.
    const now = deps.now();
    const why = explainNoKey(pool.index, body.model, {
      now,
      random: deps.random,
      excluded: new Set(),
      observations: deps.observations,
      usage: pool.usage,
      includeAvoided: true,
    });
    if (why.kind === "cooling" && why.until > now) {
      const ms = Math.ceil(why.until - now);
      headers = new Headers(headers);
      headers.set("retry-after", String(Math.ceil(ms / 1000)));
      headers.set("retry-after-ms", String(ms));
    }
  }
  return clientResponse(lastFailure.text, lastFailure.status, headers, requestId, attempts.length);
}

/**
 * When a key whose quota or day's limit is spent can serve again: the reset of
 * the window its headers say is empty (the latest of them), else its
 * Retry-After, else the start of its provider's next day (the key's day rule).
 */
function quotaResetAt(record: AttemptRecord, index: PoolIndex, key: SnapshotKey, now: number): number {
  const empty = [record.rateLimit?.requests, record.rateLimit?.tokens].filter((w) => w && w.remaining === 0 && w.resetMs !== null);
  if (empty.length > 0) return now + Math.max(...empty.map((w) => w!.resetMs!));
  if (record.retryAfterMs !== null && record.retryAfterMs > 0) return now + record.retryAfterMs;
  const rule = effectiveLimits(index.upstreams.get(key.upstreamId)?.limits ?? {}, key.limits ?? {}).day ?? DEFAULT_DAY;
  return nextDayReset(rule, now);
}

/** Keeps a key that just failed out of this isolate's selection for a while: blocked, or only avoided. */
function hold(observations: LocalObservations, keyId: string, verdict: Verdict, now: number): void {
  if (verdict.blockMs <= 0) return;
  if (verdict.soft) observations.avoid(keyId, now + verdict.blockMs);
  else observations.block(keyId, now + verdict.blockMs);
}

function noKeyError(why: ReturnType<typeof explainNoKey>, model: string, now: number): KeypoolError {
  if (why.kind === "cooling") {
    const ms = Math.max(1, Math.ceil(why.until - now));
    const seconds = Math.ceil(ms / 1000);
    return new KeypoolError(
      429,
      "rate_limit_error",
      `Every key for model '${model}' is cooling down or at its limits; retry in ${seconds}s.`,
      "all_keys_cooling",
      null,
      // Retry-After in whole seconds for every client; retry-after-ms to the millisecond for the OpenAI SDKs, which read it first.
      { "retry-after": String(seconds), "retry-after-ms": String(ms) },
    );
  }
  if (why.kind === "unknown") {
    return new KeypoolError(
      404,
      "invalid_request_error",
      `The model '${model}' does not exist or is not offered by any upstream of this pool.`,
      "model_not_found",
      "model",
    );
  }
  return new KeypoolError(503, "server_error", `No enabled upstream key serves model '${model}'.`, "no_key_for_model", "model");
}

function toEvent(req: ProxyRequest, requestId: string, a: AttemptRecord, index: number, final: boolean, logged: boolean, deps: ProxyDeps): AttemptEvent {
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
    model: req.body.model.slice(0, 200),
    endpoint: req.body.endpoint.slice(0, 100),
    stream: req.body.stream,
    status: a.status,
    outcome: a.outcome,
    latencyMs: a.latencyMs,
    ttfbMs: a.ttfbMs,
    promptTokens: a.usage?.promptTokens ?? 0,
    completionTokens: a.usage?.completionTokens ?? 0,
    totalTokens: a.usage?.totalTokens ?? 0,
    cachedTokens: a.usage?.cachedTokens ?? 0,
    reasoningTokens: a.usage?.reasoningTokens ?? 0,
    usageSource: a.usage ? (a.estimated ? "estimated" : "upstream") : "none",
    retryAfterMs: a.retryAfterMs,
    rateLimit: a.rateLimit,
    upstreamModel: a.upstreamModel,
    error: a.error,
    userAgent: final ? (req.headers.get("user-agent")?.slice(0, 200) ?? null) : null,
    clientIp: final && req.pool.snapshot.settings.logClientIp ? (req.headers.get("cf-connecting-ip")?.slice(0, 64) ?? null) : null,
    logged,
  };
}
