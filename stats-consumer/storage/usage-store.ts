import {
  HOUR_MS,
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
  selectLateFolds,
  takeUsageVersion,
} from "../../storage/snapshot-meta";
import { buildPoolUsage, dayStarts, type ClientCounts, type UsageCounts } from "../logic/build-usage";
import { liveFrom, planCost, planRangeCount, planWindowCount, poolDays, type DayBucket } from "../logic/window-count";

/**
 * Each key's sum of the hours before `liveFrom` for one day window and list of
 * keys, as this isolate last read it (`${start}|${end}|${list}`), with the
 * count of late folds it was read at (logic/window-count.ts).
 */
const keptSums = new Map<string, { end: number; lateFolds: number; rows: KeyCounts[] }>();

/** One row a key: the rows' requests and tokens summed by key. */
function summed(rows: KeyCounts[]): KeyCounts[] {
  const byKey = new Map<string, KeyCounts>();
  for (const r of rows) {
    const sum = byKey.get(r.key_id);
    if (sum) [sum.requests, sum.tokens] = [sum.requests + r.requests, sum.tokens + r.tokens];
    else byKey.set(r.key_id, { key_id: r.key_id, requests: r.requests, tokens: r.tokens });
  }
  return [...byKey.values()];
}

/** Keeps the sums read for `name` in place of those they moved on from, and forgets those of hours two or more before the ones now read anew. */
function keepSums(name: string, lateFolds: number, rows: KeyCounts[], now: number, replaces?: string): void {
  const end = liveFrom(now);
  for (const [other, sums] of keptSums) if (sums.end < end - HOUR_MS || other === replaces) keptSums.delete(other);
  keptSums.set(name, { end, lateFolds, rows });
}

/** One list of keys' day so far: the statements that read it and, where the hours before `liveFrom` were kept, their sums. */
interface DayRead {
  statements: D1PreparedStatement[];
  /** The first statement reads the sums to keep (added to `base`, if any), under this name. */
  keep?: string;
  /** Sums kept for this day and these hours. */
  kept?: KeyCounts[];
  /** Sums kept an hour before, which the first statement moves on (then forgotten: `replaces` names them). */
  base?: KeyCounts[];
  replaces?: string;
}

/**
 * How each list of keys' day is read. A day whose plan reads no more than the
 * hours from `liveFrom` on is read as planned; a longer one as the sum of the
 * hours before `liveFrom` — kept from an earlier publish while the late folds
 * are still `lateFolds` (null: read them all) — and the hours from there.
 */
function dayReads(
  db: D1Database,
  dayLists: { start: number; list: string }[],
  plans: Map<number, CountTerm[]>,
  now: number,
  days: DayBucket[],
  lateFolds: number | null,
): DayRead[] {
  const end = liveFrom(now);
  const live: CountTerm[] = [{ rows: "hour", from: end, to: Infinity, sign: 1 }];
  return dayLists.map(({ start, list }): DayRead => {
    const plan = plans.get(start)!;
    if (start >= end || planCost(plan, now) <= planCost(live, now)) return { statements: [selectKeyWindow(db, list, plan)] };
    const name = (from: number, to: number) => `${from}|${to}|${list}`;
    const kept = keptSums.get(name(start, end));
    const liveRead = selectKeyWindow(db, list, live);
    if (kept && kept.lateFolds === lateFolds) return { statements: [liveRead], kept: kept.rows };
    // Sums kept when the hours read anew began an hour earlier, or (a rolling day) the day did: moved on by the hour that
    // left the hours read anew, less the hour the day left.
    for (const [from, to] of [
      [start, end - HOUR_MS],
      [start - HOUR_MS, end],
      [start - HOUR_MS, end - HOUR_MS],
    ] as const) {
      const before = keptSums.get(name(from, to));
      if (!before || before.lateFolds !== lateFolds || (from < start && start % HOUR_MS !== 0)) continue;
      const moved: CountTerm[] = [];
      if (to < end) moved.push({ rows: "hour", from: to, to: end, sign: 1 });
      if (from < start) moved.push({ rows: "hour", from, to: start, sign: -1 });
      return { statements: [selectKeyWindow(db, list, moved), liveRead], keep: name(start, end), base: before.rows, replaces: name(from, to) };
    }
    return { statements: [selectKeyWindow(db, list, planRangeCount(start, end, now, days)), liveRead], keep: name(start, end) };
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
  const keys = await readCapacityKeys(db, now, NEARLY_SPENT);
  const starts = dayStarts(keys, now);
  const groups = new Map<number, string[]>();
  for (const [keyId, start] of starts) {
    const group = groups.get(start);
    if (group) group.push(keyId);
    else groups.set(start, [keyId]);
  }
  const thisMinute = minuteStart(now);
  // The keys go to D1 as lists of ids (json_each), each under the string D1 takes.
  const lists = keyIdLists(
    keys.map((k) => k.keyId),
    idListBytes,
  );
  const dayLists = [...groups].flatMap(([start, ids]) => keyIdLists(ids, idListBytes).map((list) => ({ start, list })));
  const stored = await selectSettings(db).first<{ value: string; time_zone_since: number }>();
  const { timeZone } = parseStoredSettings(stored?.value ?? null);
  const [month, today] = [monthStart(now, timeZone), dayStart(now, timeZone)];
  // Each day window is summed from the fewest buckets: the pool's day buckets folded wholly in its
  // zone, with the hours between their start and the window's added or taken away (logic/window-count.ts).
  const days = poolDays(now, timeZone, Number(stored?.time_zone_since ?? 0));
  const plans = new Map([...groups.keys()].map((start) => [start, planWindowCount(start, now, days)]));
  // One transaction: the latest attempt folded, and the counts that hold exactly the attempts up to it — with the
  // sums of past hours this isolate kept, while no late fold came since they were read; else read them all again.
  const read = async (lateFolds: number | null) => {
    const reads = dayReads(db, dayLists, plans, now, days, lateFolds);
    const [version, folds, clientMinutes, clientDays, ...perList] = await db.batch<Record<string, unknown>>([
      takeUsageVersion(db),
      selectLateFolds(db),
      selectClientMinutes(db, QUOTA_CLIENT_IDS_SQL, thisMinute - MINUTE_MS),
      selectClientDays(db, QUOTA_CLIENT_IDS_SQL, month, today),
      ...lists.map((list) => selectLastUsed(db, list)),
      ...lists.map((list) => selectKeyMinutes(db, list, thisMinute - MINUTE_MS)),
      ...reads.flatMap((r) => r.statements),
    ]);
    return { reads, version, lateFoldsRead: Number(folds?.results[0]?.value ?? 0), clientMinutes, clientDays, perList };
  };
  const known = Number((await selectLateFolds(db).first<{ value: number }>())?.value ?? 0);
  let counted = await read(known);
  if (counted.lateFoldsRead !== known && counted.reads.some((r) => r.kept || r.base)) counted = await read(null);
  const { reads, version, lateFoldsRead, clientMinutes, clientDays, perList } = counted;
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
  let at = 2 * lists.length;
  for (const r of reads) {
    const results = perList.slice(at, (at += r.statements.length));
    if (r.keep) keepSums(r.keep, lateFoldsRead, summed([...(r.base ?? []), ...rowsOf<KeyCounts>(results.slice(0, 1))]), now, r.replaces);
    for (const row of [...(r.kept ?? r.base ?? []), ...rowsOf<KeyCounts>(results)]) {
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
