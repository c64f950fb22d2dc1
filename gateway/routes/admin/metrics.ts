import { Hono, type Context } from "hono";
import { z } from "zod";
import { D1_WORKS, HOUR_MS, LATENCY_BOUNDS_S, MINUTE_MS, deriveKeyState, hourStart, labelValue, minuteStart, type KeyState } from "../../../schema";
import { constantTimeEqual, randomToken, sha256Hex } from "../../../schema/crypto";
import { alertDeliveryCounts } from "../../../storage/alerts";
import { clearScrapeToken, readMetricTotals, readScrapeToken, setScrapeToken, type MetricTotal } from "../../../storage/metrics";
import type { MetricSums } from "../../../storage/rollup-sums";
import { breakdownRows, bucketTotals } from "../../../storage/rollups";
import { foldDatabases } from "../../../storage/fold-databases";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { summarize } from "../../logic/stats";
import { eventOutboxBacklog } from "../../storage/event-sink";
import { op } from "./openapi";
import { emitAdminEvent } from "./shared";
import { headroomInputs, headroomLines, poolHeadroom } from "./stats";

/** The rates on this page need no spend. */
const NO_SPEND = { currency: "", today: { costMicros: 0, unpriced: 0 }, month: { costMicros: 0, unpriced: 0 } };

/** `{a="x",b="y"}` from pairs, values escaped. */
function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${labelValue(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function family(lines: string[], name: string, type: "counter" | "gauge" | "histogram", help: string): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** The counters and histograms of `metric_total`, by upstream and model. */
function counterLines(totals: MetricTotal[], currency: string): string[] {
  const lines: string[] = [];
  const each = (name: string, value: (t: MetricTotal) => [Record<string, string>, number][]) => {
    for (const t of totals) for (const [extra, v] of value(t)) lines.push(`${name}${labels({ upstream: t.upstreamId, model: t.model, ...extra })} ${v}`);
  };
  family(lines, "keypool_requests_total", "counter", "Client requests answered (counted once, on their final attempt), by upstream and model.");
  each("keypool_requests_total", (t) => [[{}, t.requests]]);
  family(lines, "keypool_attempts_total", "counter", "Upstream attempts by upstream, model and outcome.");
  each("keypool_attempts_total", (t) => Object.entries(t.outcomes).map(([outcome, n]) => [{ outcome }, n]));
  family(lines, "keypool_tokens_total", "counter", "Tokens by upstream, model and kind (prompt, completion), as the upstream reported them or as estimated.");
  each("keypool_tokens_total", (t) => [
    [{ kind: "prompt" }, t.promptTokens],
    [{ kind: "completion" }, t.completionTokens],
  ]);
  family(lines, "keypool_spend_micros_total", "counter", `What priced attempts cost, in micro-units of ${currency}, by upstream and model.`);
  each("keypool_spend_micros_total", (t) => [[{}, t.costMicros]]);
  family(lines, "keypool_unpriced_attempts_total", "counter", "Attempts with usage but no price (their cost is unknown), by upstream and model.");
  each("keypool_unpriced_attempts_total", (t) => [[{}, t.unpriced]]);
  const histogram = (name: string, help: string, buckets: (t: MetricTotal) => number[], sumMs: (t: MetricTotal) => number) => {
    family(lines, name, "histogram", help);
    for (const t of totals) {
      const base = { upstream: t.upstreamId, model: t.model };
      let cumulative = 0;
      const counts = buckets(t);
      LATENCY_BOUNDS_S.forEach((le, i) => {
        cumulative += counts[i]!;
        lines.push(`${name}_bucket${labels({ ...base, le: String(le) })} ${cumulative}`);
      });
      cumulative += counts[LATENCY_BOUNDS_S.length]!;
      lines.push(`${name}_bucket${labels({ ...base, le: "+Inf" })} ${cumulative}`);
      lines.push(`${name}_sum${labels(base)} ${sumMs(t) / 1000}`, `${name}_count${labels(base)} ${cumulative}`);
    }
  };
  histogram(
    "keypool_attempt_duration_seconds",
    "How long upstream attempts took, from sending to the end of the answer, by upstream and model.",
    (t) => t.latencyBuckets,
    (t) => t.latencyMsSum,
  );
  histogram(
    "keypool_time_to_first_byte_seconds",
    "How long upstream attempts took to their first byte of answer, by upstream and model (attempts that got one).",
    (t) => t.ttfbBuckets,
    (t) => t.ttfbMsSum,
  );
  return lines;
}

/** The whole exposition: counters since the counters began, gauges of now, the pipeline's own health. */
async function metricsText(c: Context<GatewayHono>): Promise<string> {
  const now = Date.now();
  const from = hourStart(now) - 23 * HOUR_MS;
  const [byUpstream, minutes, inputs, outbox, counters, deliveries] = await Promise.all([
    breakdownRows(foldDatabases(c.env), "hour", from, now, "upstream", {}, 1_000),
    bucketTotals(foldDatabases(c.env), "minute", minuteStart(now) - MINUTE_MS, minuteStart(now)),
    headroomInputs(c),
    eventOutboxBacklog(c.env.DB),
    readMetricTotals(foldDatabases(c.env)),
    alertDeliveryCounts(c.env.DB, now - 86_400_000),
  ]);
  const { settings, rows: keys, upstreams } = inputs;
  const headroom = poolHeadroom(inputs, now);
  const total = (field: keyof MetricSums) => byUpstream.reduce((n, r) => n + Number(r[field] ?? 0), 0);
  const rates = summarize(minutes, undefined, { requests: 0, tokens: 0 }, NO_SPEND, now, settings.timeZone);
  const states: KeyState[] = ["active", "cooling", "exhausted", "failing", "dead", "disabled"];
  const byState = new Map<string, Record<KeyState, number>>();
  const perKey = keys.length <= settings.metricsKeyLabelsMax;
  const keyLines: string[] = [];
  const enabledUpstreams = new Map(upstreams.map((u) => [u.id, u.enabled]));
  for (const k of keys) {
    const state: KeyState = k.enabled ? deriveKeyState(k.facts, settings, now).state : "disabled";
    let counts = byState.get(k.upstreamId);
    if (!counts) byState.set(k.upstreamId, (counts = Object.fromEntries(states.map((s) => [s, 0])) as Record<KeyState, number>));
    counts[state]++;
    if (perKey)
      keyLines.push(
        `keypool_key_info${labels({ key: k.id, upstream: k.upstreamId, state, upstream_enabled: String(enabledUpstreams.get(k.upstreamId) ?? false) })} 1`,
      );
  }
  const lines: string[] = [];
  lines.push(...counterLines(counters.totals, settings.currency));
  family(lines, "keypool_requests_24h", "gauge", "Client requests in the last 24 hours (whole hours).");
  lines.push(`keypool_requests_24h ${total("requests")}`);
  family(
    lines,
    "keypool_spend_micros_24h",
    "gauge",
    `What attempts cost in the last 24 hours, in micro-units of ${settings.currency}, by upstream (priced attempts only).`,
  );
  lines.push(
    `keypool_spend_micros_24h ${total("costMicros")}`,
    ...byUpstream.map((r) => `keypool_spend_micros_24h${labels({ upstream: r.id })} ${Number(r.costMicros ?? 0)}`),
  );
  family(lines, "keypool_requests_per_minute", "gauge", "Client requests over the last 60 seconds.");
  lines.push(`keypool_requests_per_minute ${rates.rpm}`);
  family(lines, "keypool_tokens_per_minute", "gauge", "Tokens over the last 60 seconds.");
  lines.push(`keypool_tokens_per_minute ${rates.tpm}`);
  family(lines, "keypool_keys", "gauge", "Upstream keys by state and upstream.");
  for (const [upstream, counts] of [...byState].sort(([a], [b]) => (a < b ? -1 : 1))) {
    for (const state of states) lines.push(`keypool_keys${labels({ state, upstream })} ${counts[state]}`);
  }
  if (perKey) {
    family(
      lines,
      "keypool_key_info",
      "gauge",
      `Each key's state (1), listed while the pool has at most ${settings.metricsKeyLabelsMax} keys (setting metricsKeyLabelsMax).`,
    );
    lines.push(...keyLines);
  }
  lines.push(...headroomLines(headroom));
  family(lines, "keypool_event_outbox_events", "gauge", "Events the queue refused, kept in D1 until the scheduler sends them on (normally 0).");
  lines.push(`keypool_event_outbox_events ${outbox.events}`);
  family(lines, "keypool_consumer_newest_event_timestamp_seconds", "gauge", "When the newest event the consumer folded happened (0: none yet).");
  lines.push(`keypool_consumer_newest_event_timestamp_seconds ${counters.newestFoldedTs / 1000}`);
  family(
    lines,
    "keypool_consumer_lag_seconds",
    "gauge",
    "Now minus the newest event folded. Grows when the consumer stops, and also in a quiet pool: the scheduler's snapshot refresh keeps it under about 11 minutes then.",
  );
  lines.push(`keypool_consumer_lag_seconds ${counters.newestFoldedTs === 0 ? 0 : Math.max(0, (now - counters.newestFoldedTs) / 1000)}`);
  family(lines, "keypool_dead_letters_total", "counter", "Messages the consumer could not read, archived under dead/ (see docs/operations.md to requeue).");
  lines.push(`keypool_dead_letters_total ${counters.deadLetters}`);
  family(
    lines,
    "keypool_d1_seconds_total",
    "counter",
    "Time D1 spent executing the consumer's statements that committed (their meta.duration, without the network), by work: each part of its fold transactions (fold_*), its publishes of the pool's usage; with several fold databases, their sum. A database runs one statement at a time: keypool_d1_database_seconds_total's rate is each one's share of its time (see docs/scale.md).",
  );
  for (const work of D1_WORKS) lines.push(`keypool_d1_seconds_total${labels({ work })} ${counters.d1.seconds[work]}`);
  family(
    lines,
    "keypool_d1_database_seconds_total",
    "counter",
    "The same time, every work added up, by fold database (1 is DB, 2 is DB_2…). Each database runs one statement at a time: the busiest's rate is how much of its time the consumer takes, the figure that says when the pool needs more databases (see docs/operations.md).",
  );
  for (const [i, seconds] of counters.d1.secondsByDatabase.entries())
    lines.push(`keypool_d1_database_seconds_total${labels({ database: String(i + 1) })} ${seconds}`);
  family(lines, "keypool_d1_rows_written_total", "counter", "Rows D1 wrote for the consumer's statements (their meta.rows_written), by work.");
  for (const work of D1_WORKS) lines.push(`keypool_d1_rows_written_total${labels({ work })} ${counters.d1.rowsWritten[work]}`);
  family(lines, "keypool_consumer_folded_events_total", "counter", "Events in the consumer's committed fold transactions (a redelivered one counts again).");
  lines.push(`keypool_consumer_folded_events_total ${counters.d1.foldedEvents}`);
  family(lines, "keypool_alert_deliveries_24h", "gauge", "Alert deliveries updated in the last 24 hours by status (pending, sent, failed).");
  for (const status of ["pending", "sent", "failed"] as const) lines.push(`keypool_alert_deliveries_24h${labels({ status })} ${deliveries[status]}`);
  return lines.join("\n") + "\n";
}

const TEXT_FORMAT = { "content-type": "text/plain; version=0.0.4; charset=utf-8" };

const tokenStateSchema = z.object({ configured: z.boolean(), createdAt: z.number().nullable() });

/** `/admin/api/metrics` (the admin session) and the scrape token's management. */
export function metricsRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/metrics",
    op(
      {
        tag: "stats",
        summary: "Prometheus metrics",
        description:
          "The same text as `/metrics` (which Prometheus reads with the scrape token): counters of requests, attempts by outcome, tokens and spend by upstream and model, latency and time-to-first-byte histograms, keys by state, headroom against the keys' limits, the event outbox, consumer lag, dead letters and alert deliveries.",
        ok: { description: "Prometheus text.", contentType: "text/plain; version=0.0.4" },
      },
      async (c) => c.text(await metricsText(c), 200, TEXT_FORMAT),
    ),
  );

  app.get(
    "/metrics/token",
    op(
      {
        tag: "stats",
        summary: "Whether a scrape token is set",
        ok: { description: "Set or not, and since when.", schema: tokenStateSchema },
      },
      async (c) => {
        const token = await readScrapeToken(c.env.DB);
        return c.json({ configured: token !== null, createdAt: token?.createdAt ?? null });
      },
    ),
  );

  app.post(
    "/metrics/token",
    op(
      {
        tag: "stats",
        summary: "Create a scrape token",
        description:
          "A new token for `GET /metrics` (`Authorization: Bearer <token>`), replacing any before it. Shown only in this answer; only its SHA-256 is stored. It opens the metrics and nothing else.",
        ok: { status: 201, description: "The token, once.", schema: z.object({ token: z.string(), createdAt: z.number() }) },
      },
      async (c) => {
        const token = `kpm_${randomToken(32)}`;
        const createdAt = Date.now();
        await setScrapeToken(c.env.DB, await sha256Hex(token), createdAt);
        await emitAdminEvent(c, "metrics_token.create", null, null);
        return c.json({ token, createdAt }, 201);
      },
    ),
  );

  app.delete(
    "/metrics/token",
    op(
      {
        tag: "stats",
        summary: "Revoke the scrape token",
        ok: { description: "Revoked: `/metrics` refuses every scrape until a new token is made.", schema: z.object({ deleted: z.boolean() }) },
      },
      async (c) => {
        const deleted = await clearScrapeToken(c.env.DB);
        if (deleted) await emitAdminEvent(c, "metrics_token.delete", null, null);
        return c.json({ deleted });
      },
    ),
  );

  return app;
}

/**
 * `GET /metrics` for Prometheus: the scrape token as a bearer token, nothing
 * else — not the admin password, not a session. 401 without a token that
 * matches (or when none is set).
 */
export function scrapeRoutes() {
  const app = new Hono<GatewayHono>();
  app.get("/metrics", async (c) => {
    const presented = (c.req.header("authorization") ?? "").match(/^Bearer\s+(\S+)$/i)?.[1];
    const stored = await readScrapeToken(c.env.DB);
    if (!presented || !stored || !(await constantTimeEqual(await sha256Hex(presented), stored.hash))) {
      throw new KeypoolError(
        401,
        "invalid_request_error",
        stored
          ? "Send the scrape token as Authorization: Bearer <token>."
          : "No scrape token is set: create one in the dashboard (Settings → Metrics) or with POST /admin/api/metrics/token.",
        "invalid_scrape_token",
      );
    }
    return c.text(await metricsText(c), 200, { ...TEXT_FORMAT, "cache-control": "no-store" });
  });
  return app;
}
