/**
 * The consumer's fold alone, into one D1 database or into several by key
 * (stats-consumer/logic/fold-shards.ts), for `npm run scale` only (never
 * deployed): it validates and folds each batch as the consumer does — the same
 * transactions of at most 1,000 events, each database's committed in parallel —
 * and skips the archive, the publishes and the alerts, which the scale run
 * measures on the real consumer. What D1 spent is stored in each database's
 * meta after every batch, not with the next fold, so the run reads it at once.
 * Batches from the queue `fold-one` go to ONE, all others to SHARD_0…SHARD_n-1.
 * A POST to /publish?to=one (or to=shards) publishes the pool's usage from those
 * databases as the consumer does (`publishUsage`), into USAGE, and stores what
 * D1 spent on it likewise.
 */
import { EVENTS_PER_TRANSACTION, readBatch } from "../../stats-consumer/handle-batch";
import { takeD1Work } from "../../stats-consumer/storage/d1-work";
import { foldEvents } from "../../stats-consumer/storage/ingest-db";
import { readPriceBook } from "../../storage/prices";
import { readSettings } from "../../storage/settings";
import type { FoldDatabases } from "../../storage/fold-databases";
import { publishUsage } from "../../stats-consumer/storage/usage-store";

type FoldEnv = Record<string, D1Database> & { USAGE: KVNamespace; PUBLISH: Queue };

function databases(env: FoldEnv, queue: string): FoldDatabases {
  if (queue === "fold-one") return [env.ONE!];
  const shards: D1Database[] = [];
  for (let i = 1; env[`SHARD_${i}`]; i++) shards.push(env[`SHARD_${i}`]!);
  return [env.SHARD_0!, ...shards];
}

export default {
  async queue(batch, env) {
    const dbs = databases(env, batch.queue);
    const { events } = readBatch(batch);
    const [settings, prices] = await Promise.all([readSettings(dbs[0]), readPriceBook(dbs[0])]);
    for (let i = 0; i < events.length; i += EVENTS_PER_TRANSACTION) await foldEvents(dbs, events.slice(i, i + EVENTS_PER_TRANSACTION), settings, prices);
    for (const [i, db] of dbs.entries()) await takeD1Work(db, i)?.statement.run();
    batch.ackAll();
  },
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/publish") return new Response("not found", { status: 404 });
    const dbs = databases(env, url.searchParams.get("to") === "one" ? "fold-one" : "fold-shards");
    const version = await publishUsage(dbs, env.USAGE, env.PUBLISH, Date.now());
    for (const [i, db] of dbs.entries()) await takeD1Work(db, i)?.statement.run();
    return Response.json({ version });
  },
} satisfies ExportedHandler<FoldEnv, unknown>;
