import { keypoolEventSchema, type KeypoolEvent } from "../schema";
import { toHealthRows } from "./logic/health-rows";
import { toBatchRows } from "./logic/rollup-rows";
import { publishIfStale } from "./publish";
import { ingestBatch } from "./storage/ingest-db";
import { readSettings } from "./storage/snapshot-store";

/** What one batch did, for logs and tests. */
export interface BatchResult {
  valid: number;
  malformed: number;
  published: number | null;
  retried: boolean;
}

/**
 * Folds one queue batch: validates every message, commits rollups, audit rows and
 * the dedupe window in one D1 transaction, then republishes the snapshot if the
 * batch could change it. A malformed message is logged and acknowledged (it can
 * never become valid); any storage failure retries the whole batch, which the
 * dedupe window makes safe.
 */
export async function handleBatch(
  batch: MessageBatch<unknown>,
  env: { DB: D1Database; SNAPSHOT: KVNamespace },
  now: () => number = Date.now,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<BatchResult> {
  const events: KeypoolEvent[] = [];
  const accepted: Message<unknown>[] = [];
  let malformed = 0;
  for (const message of batch.messages) {
    const parsed = keypoolEventSchema.safeParse(message.body);
    if (parsed.success) {
      events.push(parsed.data);
      accepted.push(message);
    } else {
      malformed++;
      console.error(`keypool consumer: dropping malformed message ${message.id}: ${parsed.error.issues[0]?.message ?? "invalid"}`);
      message.ack();
    }
  }
  const result: BatchResult = { valid: events.length, malformed, published: null, retried: false };
  if (events.length === 0) return result;
  try {
    const settings = await readSettings(env.DB);
    await ingestBatch(env.DB, toBatchRows(events, settings.timeZone), toHealthRows(events, settings));
    result.published = await publishIfStale(events, settings, { db: env.DB, kv: env.SNAPSHOT, now, sleep });
  } catch (err) {
    console.error(`keypool consumer: batch of ${events.length} failed, retrying: ${err instanceof Error ? err.message : "error"}`);
    for (const message of accepted) message.retry();
    result.retried = true;
    return result;
  }
  for (const message of accepted) message.ack();
  return result;
}
