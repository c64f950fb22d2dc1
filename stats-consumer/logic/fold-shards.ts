import { foldShardOf, type AttemptEvent, type KeypoolEvent, type PriceBook, type Settings } from "../../schema";
import type { CapacityRow } from "../../storage/key-capacity";
import type { HealthRow } from "../../storage/key-health";
import { logAttempt } from "../../storage/request-log-rows";
import { toCapacityRows } from "./capacity-rows";
import { toHealthRows } from "./health-rows";
import { FOLD_PARTS, toBatchRows, type BatchRows } from "./rollup-rows";

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
 * A batch's events as `n` databases fold them. What is kept by key — a key's
 * rollup rows, its attempts' part of the upstream and pool rows, key health,
 * key capacity, the Prometheus counters — goes to the key's database; what is
 * kept by client key — the client rows and the client's day, which client
 * quotas count against — to the client key's; the request log to the
 * request's, so a request's attempts on keys of different databases still make
 * one row; the audit log to the first, which holds no key's, client key's or
 * request's rows (`foldShardOf`: it keeps the configuration, whose reads go
 * over every key). An attempt whose key and client key share a database is one
 * staged row there; otherwise a row in each, marked with the part it feeds
 * (`FOLD_PARTS`). Folded with its key, a client key's rows would be in every
 * database, one for nearly every client key and model a bucket in each: the
 * rows written and stored would grow with the number of databases. Readers
 * add the databases up, so each part is counted once wherever it is. Each
 * database keeps in its dedupe window the ids of the events it folded a part
 * of, so a redelivered batch changes nothing in any of them, whichever
 * committed before. With one database, the batch as it is.
 */
export function foldShards(events: KeypoolEvent[], n: number, settings: Settings, prices: PriceBook): ShardBatch[] {
  if (n <= 1) {
    return [{ rows: toBatchRows(events, settings.timeZone, prices), health: toHealthRows(events, settings), capacity: toCapacityRows(events) }];
  }
  // Each database's events with a key part, and those whose client part alone it folds.
  const byKey: KeypoolEvent[][] = Array.from({ length: n }, () => []);
  const clientOnly: AttemptEvent[][] = Array.from({ length: n }, () => []);
  for (const e of events) {
    const k = keyShardOf(e, n);
    byKey[k]!.push(e);
    if (e.type !== "attempt") continue;
    const c = foldShardOf(e.clientKeyId, n);
    if (c !== k) clientOnly[c]!.push(e);
  }
  // The key and client parts of each database, with the request log left out; the log's attempts are added by request below.
  const shards = byKey.map((part, s): ShardBatch => {
    const unlogged = [...part, ...clientOnly[s]!].map((e) => (e.type === "attempt" && e.logged ? { ...e, logged: false } : e));
    const partOf = (e: AttemptEvent) =>
      foldShardOf(e.keyId, n) !== s ? FOLD_PARTS.client : foldShardOf(e.clientKeyId, n) === s ? FOLD_PARTS.both : FOLD_PARTS.key;
    return { rows: toBatchRows(unlogged, settings.timeZone, prices, partOf), health: toHealthRows(part, settings), capacity: toCapacityRows(part) };
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
