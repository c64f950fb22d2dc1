import {
  DAY_ID_LIST_BYTES,
  MINUTE_MS,
  NEARLY_SPENT,
  PUBLISH_USAGE_MESSAGE,
  USAGE_KV_KEY,
  USAGE_SPACING,
  dayStart,
  foldShardOf,
  minuteStart,
  monthStart,
  parseStoredSettings,
} from "../../schema";
import { QUOTA_CLIENT_IDS_SQL } from "../../storage/client-keys";
import { keyIdLists, readCapacityKeys, selectLastUsed } from "../../storage/keys";
import type { CountTerm } from "../../storage/rollup-sums";
import {
  addClientDays,
  rollupsKeptFrom,
  selectClientDays,
  selectClientDaysSince,
  selectClientMinutes,
  selectKeyMinutes,
  selectKeyWindow,
  type KeyCounts,
} from "../../storage/rollups";
import type { FoldDatabases } from "../../storage/fold-databases";
import { selectSettings } from "../../storage/settings";
import {
  claimUsagePublish,
  claimUsageRefresh,
  claimUsageVersion,
  readUsagePublishedKeys,
  recordUsagePublished,
  takeUsageVersion,
} from "../../storage/snapshot-meta";
import { fillKept, moveKept, pruneKept, selectKeptDay } from "../../storage/usage-kept";
import { countD1Work } from "./d1-work";
import { buildPoolUsage, dayStarts, type ClientCounts, type UsageCounts } from "../logic/build-usage";
import { liveFrom, planCost, planRangeCount, planWindowCount, poolDays, type DayBucket } from "../logic/window-count";

/**
 * The statements that read each list of keys' day so far. A day whose plan
 * reads no more than the hours from `liveFrom` on is read as planned. A longer
 * one is the sum of its past hours kept in D1 (`usage_kept`) and the hour
 * buckets after them: the rows that fell behind are moved on, the missing ones
 * filled as `planRangeCount` plans them, then read — in the publish's
 * transaction. Each list's last statement answers with its keys' sums.
 */
function dayReads(
  db: D1Database,
  dayLists: { start: number; list: string }[],
  plans: Map<number, CountTerm[]>,
  now: number,
  days: DayBucket[],
  minutesFrom: number,
): D1PreparedStatement[][] {
  const end = liveFrom(now);
  const live: CountTerm[] = [{ rows: "hour", from: end, to: Infinity, sign: 1 }];
  return dayLists.map(({ start, list }) => {
    const plan = plans.get(start)!;
    if (start >= end || planCost(plan, now) <= planCost(live, now)) return [selectKeyWindow(db, list, plan)];
    return [
      ...moveKept(db, list, start, end),
      fillKept(db, list, start, end, planRangeCount(start, end, now, days, minutesFrom)),
      selectKeptDay(db, list, start),
    ];
  });
}

/**
 * Publishes the pool's usage against its keys' and client keys' limits (KV
 * `usage:v2`) unless another consumer did within the last second (or longer,
 * in a pool whose publish takes long: `USAGE_SPACING`): then it asks
 * the queue for a control message a second later (one pending at a time),
 * whose batch publishes what this one could not — also when no more traffic
 * comes. A pool without limits writes it once, empty. Returns the version
 * written, if any. (`idListBytes`: the longest list of key ids one statement
 * takes; tests make it short.)
 */
export async function publishUsage(dbs: FoldDatabases, kv: KVNamespace, queue: Queue, now: number, idListBytes?: number): Promise<number | null> {
  const db = dbs[0];
  const started = Date.now();
  if (!(await claimUsagePublish(db, now, USAGE_SPACING))) {
    if (await claimUsageRefresh(db, now, USAGE_SPACING.minMs)) await queue.send(PUBLISH_USAGE_MESSAGE, { contentType: "json", delaySeconds: 1 });
    return null;
  }
  const keys = await readCapacityKeys(dbs, now, NEARLY_SPENT, (results, shard) => countD1Work("usage_publish", results, shard));
  const starts = dayStarts(keys, now);
  const thisMinute = minuteStart(now);
  const stored = await selectSettings(db).first<{ value: string; time_zone_since: number }>();
  const settings = parseStoredSettings(stored?.value ?? null);
  const { timeZone } = settings;
  // The oldest minute bucket retention keeps: a day's first hour before it is counted whole (window-count.ts).
  const minutesFrom = rollupsKeptFrom(settings, "minute", now);
  const [month, today] = [monthStart(now, timeZone), dayStart(now, timeZone)];
  const zoneSince = Number(stored?.time_zone_since ?? 0);
  // Each day window is summed from the fewest buckets: the pool's day buckets folded wholly in its
  // zone, with the hours between their start and the window's added or taken away (logic/window-count.ts).
  const days = poolDays(now, timeZone, zoneSince);
  const plans = new Map([...new Set(starts.values())].map((start) => [start, planWindowCount(start, now, days, minutesFrom)]));
  // Over several fold databases, the client keys with quotas come from the configuration (the first), as a list.
  const clientIds =
    dbs.length === 1
      ? QUOTA_CLIENT_IDS_SQL
      : `SELECT value FROM json_each('${JSON.stringify((await db.prepare(QUOTA_CLIENT_IDS_SQL).all<{ id: string }>()).results.map((r) => r.id)).replaceAll("'", "''")}')`;
  // Each database reads its own keys in one transaction — the latest attempt folded for each key, and the counts
  // that hold exactly the attempts up to it — and its share of the client keys' counts; the first takes the version.
  const reads = await Promise.all(
    dbs.map(async (shard, i) => {
      const mine = dbs.length === 1 ? keys : keys.filter((k) => foldShardOf(k.keyId, dbs.length) === i);
      const groups = new Map<number, string[]>();
      for (const k of mine) {
        const start = starts.get(k.keyId)!;
        const group = groups.get(start);
        if (group) group.push(k.keyId);
        else groups.set(start, [k.keyId]);
      }
      // The keys go to D1 as lists of ids (json_each), each under the string D1 takes (a day window's, shorter).
      const lists = keyIdLists(
        mine.map((k) => k.keyId),
        idListBytes,
      );
      const dayLists = [...groups].flatMap(([start, ids]) => keyIdLists(ids, idListBytes ?? DAY_ID_LIST_BYTES).map((list) => ({ start, list })));
      const dayStatements = dayReads(shard, dayLists, plans, now, days, minutesFrom);
      const read = await shard.batch<Record<string, unknown>>([
        ...(i === 0 ? [takeUsageVersion(shard)] : []),
        selectClientMinutes(shard, clientIds, thisMinute - MINUTE_MS),
        dbs.length === 1
          ? selectClientDays(shard, clientIds, month, today, minutesFrom)
          : selectClientDaysSince(shard, zoneSince, clientIds, month, today, minutesFrom),
        ...lists.map((list) => selectLastUsed(shard, list)),
        ...lists.map((list) => selectKeyMinutes(shard, list, thisMinute - MINUTE_MS)),
        pruneKept(shard, liveFrom(now)),
        ...dayStatements.flat(),
      ]);
      countD1Work("usage_publish", read, i);
      return { read: i === 0 ? read.slice(1) : read, version: i === 0 ? read[0] : undefined, lists: lists.length, dayStatements };
    }),
  );
  const rowsOf = <T>(results: (D1Result<Record<string, unknown>> | undefined)[]) => results.flatMap((r) => (r?.results ?? []) as unknown as T[]);
  const counts: UsageCounts = { minutes: new Map(), days: new Map(), countedTo: new Map() };
  const clients: ClientCounts = { month, today, minutes: new Map(), days: new Map() };
  for (const { read, lists, dayStatements } of reads) {
    const [clientMinutes, clientDays, ...perList] = read;
    for (const r of rowsOf<{ key_id: string; last_used_at: number }>(perList.slice(0, lists))) counts.countedTo.set(r.key_id, Number(r.last_used_at));
    for (const r of rowsOf<KeyCounts & { bucket: number }>(perList.slice(lists, 2 * lists))) {
      const byBucket = counts.minutes.get(r.key_id) ?? new Map<number, { requests: number; tokens: number }>();
      byBucket.set(r.bucket, { requests: r.requests, tokens: r.tokens });
      counts.minutes.set(r.key_id, byBucket);
    }
    let at = 2 * lists + 1;
    for (const r of dayStatements) {
      for (const row of rowsOf<KeyCounts>([perList[(at += r.length) - 1]])) {
        const sum = counts.days.get(row.key_id) ?? { requests: 0, tokens: 0 };
        counts.days.set(row.key_id, { requests: sum.requests + row.requests, tokens: sum.tokens + row.tokens });
      }
    }
    // A client key's counts are split over the databases: added up.
    for (const r of (clientMinutes?.results ?? []) as unknown as { client_key_id: string; bucket: number; requests: number; tokens: number }[]) {
      const byBucket = clients.minutes.get(r.client_key_id) ?? new Map<number, { requests: number; tokens: number }>();
      const sum = byBucket.get(r.bucket) ?? { requests: 0, tokens: 0 };
      byBucket.set(r.bucket, { requests: sum.requests + r.requests, tokens: sum.tokens + r.tokens });
      clients.minutes.set(r.client_key_id, byBucket);
    }
    for (const r of (clientDays?.results ?? []) as Record<string, number>[]) addClientDays(clients.days, r);
  }
  const version = reads[0]!.version;
  const usage = buildPoolUsage(keys, counts, clients, Number(version!.results[0]!.value), now);
  const held = usage.keyIds.length + Object.keys(usage.clients).length;
  if (held === 0 && (await readUsagePublishedKeys(db)) === 0) return null;
  if (!(await claimUsageVersion(db, usage.version))) return null;
  await kv.put(USAGE_KV_KEY, JSON.stringify(usage), { metadata: { version: usage.version, generatedAt: usage.generatedAt } });
  // Date.now() moves with I/O in a Worker: from the claim to the write, the time D1 and KV took.
  await recordUsagePublished(db, held, Date.now() - started);
  return usage.version;
}
