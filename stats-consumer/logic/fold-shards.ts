import { foldShardOf, type KeypoolEvent, type PriceBook, type Settings } from "../../schema";
import type { CapacityRow } from "../../storage/key-capacity";
import type { HealthRow } from "../../storage/key-health";
import { logAttempt } from "../../storage/request-log-rows";
import { toCapacityRows } from "./capacity-rows";
import { toHealthRows } from "./health-rows";
import { toBatchRows, type BatchRows } from "./rollup-rows";

/** What one database of the fold commits for a batch: one transaction of `ingestBatch`. */
export interface ShardBatch {
  rows: BatchRows;
  health: HealthRow[];
  capacity: CapacityRow[];
}

/** The database that folds an event's key part: its key's (attempts and probes); admin events go to the first. */
function keyShardOf(e: KeypoolEvent, n: number): number {
  return e.type === "admin" ? 0 : foldShardOf(e.keyId, n);
}

/**
 * A batch's events as `n` databases fold them. Everything kept by key — the
 * rollups (a key's rows, and its attempts' part of the client-key, upstream and
 * pool rows, which the readers sum over the databases), key health, key
 * capacity, the Prometheus counters — goes to the key's database; the request
 * log goes to the request's, so a request's attempts on keys of different
 * databases still make one row; the audit log goes to the first, which holds
 * no key's or request's rows (`foldShardOf`: it keeps the configuration, whose
 * reads go over every key). Each database
 * keeps in its dedupe window the ids of the events it folded a part of, so a
 * redelivered batch changes nothing in any of them, whichever committed before.
 * With one database, the batch as it is.
 */
export function foldShards(events: KeypoolEvent[], n: number, settings: Settings, prices: PriceBook): ShardBatch[] {
  if (n <= 1) {
    return [{ rows: toBatchRows(events, settings.timeZone, prices), health: toHealthRows(events, settings), capacity: toCapacityRows(events) }];
  }
  const byKey: KeypoolEvent[][] = Array.from({ length: n }, () => []);
  for (const e of events) byKey[keyShardOf(e, n)]!.push(e);
  // The key part of each database, with the request log left out; the log's attempts are added by request below.
  const shards = byKey.map((part): ShardBatch => {
    const unlogged = part.map((e) => (e.type === "attempt" && e.logged ? { ...e, logged: false } : e));
    return { rows: toBatchRows(unlogged, settings.timeZone, prices), health: toHealthRows(part, settings), capacity: toCapacityRows(part) };
  });
  const seen = shards.map((s) => new Set(s.rows.seen.map((e) => e.id)));
  const logged = new Set<string>();
  for (const e of events) {
    if (e.type !== "attempt" || !e.logged || logged.has(e.id)) continue;
    logged.add(e.id);
    const s = foldShardOf(e.requestId, n);
    const shard = shards[s]!;
    const [cost, unpriced] = prices.attemptCost(e);
    shard.rows.log.push(logAttempt(e, cost, unpriced));
    if (!seen[s]!.has(e.id)) {
      seen[s]!.add(e.id);
      shard.rows.seen.push({ id: e.id, ts: e.ts });
    }
  }
  return shards;
}
