import {
  DAY_ID_LIST_BYTES,
  MINUTE_MS,
  NEARLY_SPENT,
  PUBLISH_USAGE_MESSAGE,
  USAGE_KV_KEY,
  USAGE_SPACING,
  dayStart,
  minuteStart,
  monthStart,
  parseStoredSettings,
} from "../../schema";
import { QUOTA_CLIENT_IDS_SQL } from "../../storage/client-keys";
import { keyIdLists, readCapacityKeys, selectLastUsed } from "../../storage/keys";
import type { CountTerm } from "../../storage/rollup-sums";
import { selectClientDays, selectClientMinutes, selectKeyMinutes, selectKeyWindow, type KeyCounts } from "../../storage/rollups";
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
): D1PreparedStatement[][] {
  const end = liveFrom(now);
  const live: CountTerm[] = [{ rows: "hour", from: end, to: Infinity, sign: 1 }];
  return dayLists.map(({ start, list }) => {
    const plan = plans.get(start)!;
    if (start >= end || planCost(plan, now) <= planCost(live, now)) return [selectKeyWindow(db, list, plan)];
    return [...moveKept(db, list, start, end), fillKept(db, list, start, end, planRangeCount(start, end, now, days)), selectKeptDay(db, list, start)];
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
export async function publishUsage(db: D1Database, kv: KVNamespace, queue: Queue, now: number, idListBytes?: number): Promise<number | null> {
  const started = Date.now();
  if (!(await claimUsagePublish(db, now, USAGE_SPACING))) {
    if (await claimUsageRefresh(db, now, USAGE_SPACING.minMs)) await queue.send(PUBLISH_USAGE_MESSAGE, { contentType: "json", delaySeconds: 1 });
    return null;
  }
  const keys = await readCapacityKeys(db, now, NEARLY_SPENT, (results) => countD1Work("usage_publish", results));
  const starts = dayStarts(keys, now);
  const groups = new Map<number, string[]>();
  for (const [keyId, start] of starts) {
    const group = groups.get(start);
    if (group) group.push(keyId);
    else groups.set(start, [keyId]);
  }
  const thisMinute = minuteStart(now);
  // The keys go to D1 as lists of ids (json_each), each under the string D1 takes (a day window's, shorter).
  const lists = keyIdLists(
    keys.map((k) => k.keyId),
    idListBytes,
  );
  const dayLists = [...groups].flatMap(([start, ids]) => keyIdLists(ids, idListBytes ?? DAY_ID_LIST_BYTES).map((list) => ({ start, list })));
  const stored = await selectSettings(db).first<{ value: string; time_zone_since: number }>();
  const { timeZone } = parseStoredSettings(stored?.value ?? null);
  const [month, today] = [monthStart(now, timeZone), dayStart(now, timeZone)];
  // Each day window is summed from the fewest buckets: the pool's day buckets folded wholly in its
  // zone, with the hours between their start and the window's added or taken away (logic/window-count.ts).
  const days = poolDays(now, timeZone, Number(stored?.time_zone_since ?? 0));
  const plans = new Map([...groups.keys()].map((start) => [start, planWindowCount(start, now, days)]));
  // One transaction: the latest attempt folded, and the counts that hold exactly the attempts up to it.
  const reads = dayReads(db, dayLists, plans, now, days);
  const read = await db.batch<Record<string, unknown>>([
    takeUsageVersion(db),
    selectClientMinutes(db, QUOTA_CLIENT_IDS_SQL, thisMinute - MINUTE_MS),
    selectClientDays(db, QUOTA_CLIENT_IDS_SQL, month, today),
    ...lists.map((list) => selectLastUsed(db, list)),
    ...lists.map((list) => selectKeyMinutes(db, list, thisMinute - MINUTE_MS)),
    pruneKept(db, liveFrom(now)),
    ...reads.flat(),
  ]);
  countD1Work("usage_publish", read);
  const [version, clientMinutes, clientDays, ...perList] = read;
  const rowsOf = <T>(results: (D1Result<Record<string, unknown>> | undefined)[]) => results.flatMap((r) => (r?.results ?? []) as unknown as T[]);
  const lastUsed = rowsOf<{ key_id: string; last_used_at: number }>(perList.slice(0, lists.length));
  const minutes = rowsOf<KeyCounts & { bucket: number }>(perList.slice(lists.length, 2 * lists.length));
  const counts: UsageCounts = { minutes: new Map(), days: new Map(), countedTo: new Map() };
  for (const r of lastUsed) counts.countedTo.set(r.key_id, Number(r.last_used_at));
  for (const r of minutes) {
    const byBucket = counts.minutes.get(r.key_id) ?? new Map<number, { requests: number; tokens: number }>();
    byBucket.set(r.bucket, { requests: r.requests, tokens: r.tokens });
    counts.minutes.set(r.key_id, byBucket);
  }
  let at = 2 * lists.length + 1;
  for (const r of reads) {
    for (const row of rowsOf<KeyCounts>([perList[(at += r.length) - 1]])) {
      const sum = counts.days.get(row.key_id) ?? { requests: 0, tokens: 0 };
      counts.days.set(row.key_id, { requests: sum.requests + row.requests, tokens: sum.tokens + row.tokens });
    }
  }
  const clients: ClientCounts = { month, today, minutes: new Map(), days: new Map() };
  for (const r of (clientMinutes?.results ?? []) as unknown as { client_key_id: string; bucket: number; requests: number; tokens: number }[]) {
    const byBucket = clients.minutes.get(r.client_key_id) ?? new Map<number, { requests: number; tokens: number }>();
    byBucket.set(r.bucket, { requests: r.requests, tokens: r.tokens });
    clients.minutes.set(r.client_key_id, byBucket);
  }
  for (const r of (clientDays?.results ?? []) as Record<string, number>[]) clients.days.set(String(r.client_key_id), r);
  const usage = buildPoolUsage(keys, counts, clients, Number(version!.results[0]!.value), now);
  const held = usage.keyIds.length + Object.keys(usage.clients).length;
  if (held === 0 && (await readUsagePublishedKeys(db)) === 0) return null;
  if (!(await claimUsageVersion(db, usage.version))) return null;
  await kv.put(USAGE_KV_KEY, JSON.stringify(usage), { metadata: { version: usage.version, generatedAt: usage.generatedAt } });
  // Date.now() moves with I/O in a Worker: from the claim to the write, the time D1 and KV took.
  await recordUsagePublished(db, held, Date.now() - started);
  return usage.version;
}
