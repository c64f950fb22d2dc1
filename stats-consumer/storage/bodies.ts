import { BODIES_PREFIX, DAY_MS, bodiesKey, type KeptBodies } from "../../schema";

/**
 * Kept request and response bodies in R2 (`bodies/<day>/<request id>.json`),
 * written by the consumer only. A redelivered message writes the same object
 * again. Days past `retention.bodyDays` are deleted, at most once an hour.
 */

export async function storeBodies(bucket: R2Bucket, bodies: KeptBodies[]): Promise<void> {
  await Promise.all(bodies.map((b) => bucket.put(bodiesKey(b.requestId, b.ts), JSON.stringify(b), { httpMetadata: { contentType: "application/json" } })));
}

/** How many objects one prune deletes at most (the next hour's takes the rest). */
const PRUNE_MAX = 5_000;

/** Deletes the kept bodies of days before the one `days` days before `now`; returns how many objects went. */
export async function pruneBodies(bucket: R2Bucket, days: number, now: number): Promise<number> {
  const cutoff = new Date(now - days * DAY_MS).toISOString().slice(0, 10);
  let deleted = 0;
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix: BODIES_PREFIX, delimiter: "/", cursor });
    for (const dayPrefix of page.delimitedPrefixes) {
      if (dayPrefix.slice(BODIES_PREFIX.length, -1) >= cutoff) continue;
      let inner: string | undefined;
      do {
        const objects = await bucket.list({ prefix: dayPrefix, cursor: inner, limit: 1_000 });
        if (objects.objects.length > 0) await bucket.delete(objects.objects.map((o) => o.key));
        deleted += objects.objects.length;
        inner = objects.truncated && deleted < PRUNE_MAX ? objects.cursor : undefined;
      } while (inner);
      if (deleted >= PRUNE_MAX) return deleted;
    }
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return deleted;
}
