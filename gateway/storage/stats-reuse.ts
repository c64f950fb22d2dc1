import { COSTLY_MS, REUSE_FACTOR } from "../logic/reuse-windows";
import { claimRecompute, forgetCachedAnswer, readCachedAnswer, releaseClaim, storeCachedAnswer } from "../../storage/stats-cache";

/** How long one reader may take to recompute an answer before another may try (longer than D1 lets a query run). */
const CLAIM_MS = 60_000;

/** An answer and when it was computed (epoch ms). */
export interface Reused<T> {
  value: T;
  computedAt: number;
}

/**
 * The answer of a costly read named `name` (the name says everything it
 * depends on). A kept answer younger than `REUSE_FACTOR` times what it took,
 * and than `maxAgeMs`, is returned as it is. Otherwise one reader computes it
 * again and keeps it, while the others are given the kept one; an answer that
 * took under `COSTLY_MS` is not kept at all. `now` is the clock (in a Worker it
 * moves with I/O, so it times the D1 reads).
 */
export async function reuseOrCompute<T>(db: D1Database, name: string, maxAgeMs: number, now: () => number, compute: () => Promise<T>): Promise<Reused<T>> {
  const kept = await readCachedAnswer(db, name);
  const asked = now();
  const keptValue = () => ({ value: JSON.parse(kept!.body) as T, computedAt: kept!.computedAt });
  if (kept && asked - kept.computedAt < Math.min(maxAgeMs, REUSE_FACTOR * kept.tookMs)) return keptValue();
  const claimed = kept !== null && (await claimRecompute(db, name, asked, asked + CLAIM_MS));
  if (kept && !claimed) return keptValue();
  const started = now();
  let value: T;
  try {
    value = await compute();
  } catch (err) {
    if (claimed) await releaseClaim(db, name).catch(() => undefined);
    throw err;
  }
  const tookMs = now() - started;
  if (tookMs >= COSTLY_MS) await storeCachedAnswer(db, name, { computedAt: started, tookMs, body: JSON.stringify(value) });
  else if (kept) await forgetCachedAnswer(db, name);
  return { value, computedAt: started };
}
