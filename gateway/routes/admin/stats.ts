import { Hono } from "hono";
import { z } from "zod";
import {
  DAY_MS,
  MINUTE_MS,
  dayStart,
  minuteStart,
  monthStart,
  rollupRowsFor,
  statsBreakdownQuerySchema,
  statsBreakdownSchema,
  statsQuerySchema,
  statsSeriesSchema,
  statsSummarySchema,
  statsHeadroomSchema,
  type Headroom,
  type Settings,
  type StatsHeadroom,
} from "../../../schema";
import type { GatewayHono } from "../../context";
import { addToHeadroom, emptyHeadroom } from "../../logic/capacity-figures";
import { keyStanding } from "../../logic/key-listing";
import { bucketStarts, fillSeries, summarize, toMetrics } from "../../logic/stats";
import { readPoolUsage } from "../../storage/snapshot-cache";
import { REUSE_FACTOR, REUSE_LONGEST_MS } from "../../logic/reuse-windows";
import { reuseOrCompute } from "../../storage/stats-reuse";
import { loadKeyLimitRows } from "../../../storage/keys";
import { breakdownRows, bucketTotals, rollingTotals, rollupsKeptFrom, seriesRows, spendTotals, type BreakdownBy } from "../../../storage/rollups";
import { foldDatabases } from "../../../storage/fold-databases";
import { readSettings } from "../../../storage/settings";
import { listUpstreams } from "../../../storage/upstreams";
import { op } from "./openapi";
import type { AdminContext } from "./shared";

/** Buckets a series covers when the query does not say: an hour of minutes, two days of hours, a month of days. */
const DEFAULT_COUNT = { minute: 60, hour: 48, day: 30 } as const;

/** The series and breakdown queries' common part: bucket range and filters. */
async function statsRange(c: AdminContext, query: z.infer<typeof statsQuerySchema>, read?: Settings, by?: string) {
  const { bucket, count, ...filters } = query;
  const settings = read ?? (await readSettings(c.env.DB));
  const now = Date.now();
  const starts = bucketStarts(bucket, count ?? DEFAULT_COUNT[bucket], now, settings.timeZone);
  // Where the rows the read takes are kept from (the query schema refused a read that none take).
  const rows = rollupRowsFor({ ...filters, by }) ?? "key";
  return { bucket, starts, filters, keptFrom: rollupsKeptFrom(settings, bucket, now, rows) };
}

/** The most models the headroom breaks down by. */
const HEADROOM_MODELS = 200;

/**
 * Reads what the headroom is computed from: every key's limits, models, health
 * facts and provider readings (`loadKeyLimitRows`; what is used of a limit comes
 * from the published usage).
 */
export async function headroomInputs(c: AdminContext) {
  const settings = await readSettings(c.env.DB);
  const [rows, upstreams, usage] = await Promise.all([loadKeyLimitRows(foldDatabases(c.env)), listUpstreams(c.env.DB), readPoolUsage(c.env.SNAPSHOT)]);
  return { settings, rows, upstreams, usage };
}

/** The pool's headroom against its keys' limits at `now`: whole, by enabled upstream, by model. */
export function poolHeadroom({ settings, rows, upstreams, usage }: Awaited<ReturnType<typeof headroomInputs>>, now: number): StatsHeadroom {
  const byUpstream = new Map(upstreams.map((u) => [u.id, { id: u.id, name: u.name, enabled: u.enabled, sum: emptyHeadroom() }]));
  const pool = emptyHeadroom();
  const byModel = new Map<string, Headroom>();
  const anyModel: Parameters<typeof addToHeadroom>[1][] = [];
  for (const row of rows) {
    const upstream = byUpstream.get(row.upstreamId);
    if (!upstream?.enabled) continue;
    const view = keyStanding(row, settings, usage, now);
    addToHeadroom(pool, view);
    addToHeadroom(upstream.sum, view);
    const models = row.models.length > 0 ? row.models : row.upstreamModels;
    if (models.length === 0) anyModel.push(view);
    for (const model of models) {
      let sum = byModel.get(model);
      if (!sum) byModel.set(model, (sum = emptyHeadroom()));
      addToHeadroom(sum, view);
    }
  }
  const models = [...byModel.keys()].sort().slice(0, HEADROOM_MODELS);
  for (const model of models) for (const view of anyModel) addToHeadroom(byModel.get(model)!, view);
  return {
    pool,
    byUpstream: [...byUpstream.values()].filter((u) => u.enabled).map((u) => ({ id: u.id, name: u.name, ...u.sum })),
    byModel: models.map((model) => ({ model, ...byModel.get(model)! })),
    usageAt: usage?.at ?? null,
    generatedAt: now,
  };
}

/** Prometheus gauges of the headroom: the pool's, and each upstream's by id. */
export function headroomLines(h: StatsHeadroom): string[] {
  const gauges = [
    ["limit", "Limits known, summed over keys that have one"],
    ["used", "Used of those limits"],
    ["free", "Free now on keys that can take traffic"],
  ] as const;
  const lines: string[] = [];
  for (const [field, help] of gauges) {
    lines.push(`# HELP keypool_capacity_${field} ${help}, by window (rpm, rpd, tpm, tpd); without an upstream label, the pool's.`);
    lines.push(`# TYPE keypool_capacity_${field} gauge`);
    for (const w of ["rpm", "rpd", "tpm", "tpd"] as const) {
      lines.push(`keypool_capacity_${field}{window="${w}"} ${h.pool[w][field]}`);
      for (const u of h.byUpstream) lines.push(`keypool_capacity_${field}{window="${w}",upstream="${u.id}"} ${u[w][field]}`);
    }
  }
  lines.push("# HELP keypool_capacity_unknown_keys Keys that can serve without a known limit, by window.");
  lines.push("# TYPE keypool_capacity_unknown_keys gauge");
  for (const w of ["rpm", "rpd", "tpm", "tpd"] as const) lines.push(`keypool_capacity_unknown_keys{window="${w}"} ${h.pool[w].unknownKeys}`);
  return lines;
}

/** Usage numbers for the dashboard and for monitoring, all read from the rollups. */
export function statsRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/stats/summary",
    op(
      {
        tag: "stats",
        summary: "RPM, TPM, RPD, TPD",
        description:
          "Requests and tokens over the last 60 seconds (from minute rollups, the way sliding-window limiters estimate), today in the settings' time zone, and the last 24 hours.",
        ok: { description: "The pool's current rates and today's totals.", schema: statsSummarySchema },
      },
      async (c) => {
        const now = Date.now();
        const settings = await readSettings(c.env.DB);
        const today = dayStart(now, settings.timeZone);
        const [minutes, days, last24h, spend] = await Promise.all([
          bucketTotals(foldDatabases(c.env), "minute", minuteStart(now) - MINUTE_MS, minuteStart(now)),
          bucketTotals(foldDatabases(c.env), "day", today, today),
          rollingTotals(foldDatabases(c.env), minuteStart(now) - DAY_MS + MINUTE_MS, now + 1),
          spendTotals(foldDatabases(c.env), monthStart(now, settings.timeZone), today),
        ]);
        return c.json(summarize(minutes, days[0], last24h, { currency: settings.currency, ...spend }, now, settings.timeZone));
      },
    ),
  );

  app.get(
    "/stats/series",
    op(
      {
        tag: "stats",
        summary: "Usage over time",
        description:
          "Every metric per minute, hour or day for the last `count` buckets (60 minutes, 48 hours or 30 days by default), zeros where there was no traffic; filtered by key, model, client key or upstream. Usage is counted per key × model and per client key × model, so a client key goes with a model only: with a key or an upstream it is refused (400, `param` `clientKeyId`) — the request log has each request's key and client key.",
        query: statsQuerySchema,
        ok: { description: "One point per bucket, oldest first.", schema: statsSeriesSchema },
      },
      async (c, { query }) => {
        const { bucket, starts, filters, keptFrom } = await statsRange(c, query);
        const rows = await seriesRows(foldDatabases(c.env), bucket, starts[0]!, starts.at(-1)!, filters);
        return c.json({ bucket, keptFrom, points: fillSeries(rows, starts) });
      },
    ),
  );

  app.get(
    "/stats/breakdown",
    op(
      {
        tag: "stats",
        summary: "Usage by model, key, client key or upstream",
        description: `Every metric summed over the same range as a series, per value of \`by\`, busiest first (at most 100). As for a series, a client key (a filter, or \`by=client\`) does not go with a key or an upstream (a filter, or \`by=key\` / \`by=upstream\`): refused with 400. By key or client key the sums read every key's or client key's rows of the range: an answer that took long is reused while it is younger than ${REUSE_FACTOR} times what it took (at most ${REUSE_LONGEST_MS.breakdown.minute / MINUTE_MS} minute by minute, ${REUSE_LONGEST_MS.breakdown.hour / MINUTE_MS} by hour, ${REUSE_LONGEST_MS.breakdown.day / MINUTE_MS} by day), and \`computedAt\` says when it was summed.`,
        query: statsBreakdownQuerySchema,
        ok: { description: "One row per value of `by`.", schema: statsBreakdownSchema },
      },
      async (c, { query }) => {
        const { by, ...range } = query;
        // Day buckets start at midnight in the settings' time zone: a kept answer is one zone's.
        const settings = await readSettings(c.env.DB);
        const { timeZone } = settings;
        const compute = async () => {
          const { bucket, starts, filters, keptFrom } = await statsRange(c, range, settings, by);
          const from = starts[0]!;
          const to = starts.at(-1)!;
          const rows = await breakdownRows(foldDatabases(c.env), bucket, from, to, by satisfies BreakdownBy, filters, 100);
          return { by, bucket, from, to, keptFrom, rows: rows.map(({ id, name, ...sums }) => ({ id, name, ...toMetrics(sums) })) };
        };
        if (by !== "key" && by !== "client") {
          const computedAt = Date.now();
          return c.json({ ...(await compute()), computedAt });
        }
        const { keyId, model, clientKeyId, upstreamId } = range;
        const name = `breakdown:v1:${JSON.stringify([by, range.bucket, range.count ?? DEFAULT_COUNT[range.bucket], keyId, model, clientKeyId, upstreamId, timeZone])}`;
        const { value, computedAt } = await reuseOrCompute(c.env.DB, name, REUSE_LONGEST_MS.breakdown[range.bucket], Date.now, compute);
        return c.json({ ...value, computedAt });
      },
    ),
  );

  app.get(
    "/stats/headroom",
    op(
      {
        tag: "stats",
        summary: "Headroom against limits",
        description: `For each of RPM, RPD, TPM and TPD: the limits known (configured, else learned from the providers' headers) summed over the keys of enabled upstreams, what is used of them and what is free now on keys that can take traffic — for the pool, each upstream and each model. Keys without a known limit are counted apart. It reads every key: an answer that took long is reused while it is younger than ${REUSE_FACTOR} times what it took, at most ${REUSE_LONGEST_MS.headroom / 1000} s (\`generatedAt\` says when it was computed).`,
        ok: { description: "The pool's headroom.", schema: statsHeadroomSchema },
      },
      async (c) => {
        const compute = async () => {
          const inputs = await headroomInputs(c);
          return poolHeadroom(inputs, Date.now());
        };
        return c.json((await reuseOrCompute(c.env.DB, "headroom:v1", REUSE_LONGEST_MS.headroom, Date.now, compute)).value);
      },
    ),
  );

  return app;
}
