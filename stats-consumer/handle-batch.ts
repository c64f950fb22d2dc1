import { keypoolEventSchema, type KeypoolEvent } from "../schema";
import { toHealthRows } from "./logic/health-rows";
import { toBatchRows } from "./logic/rollup-rows";
import { publishIfStale } from "./publish";
import { runReplayJobs } from "./replay";
import { DEAD_PREFIX, EVENTS_PREFIX, appendToArchive, archiveKey } from "./storage/archive";
import { ingestBatch } from "./storage/ingest-db";
import { sendToQueue } from "./storage/queues";
import { readSettings } from "./storage/snapshot-store";

/** The bindings the consumer works with. */
export interface ConsumerBindings {
  DB: D1Database;
  SNAPSHOT: KVNamespace;
  ARCHIVE: R2Bucket;
  EVENTS: Queue;
  DEAD_LETTERS: Queue;
}

/** What one batch did, for logs and tests. */
export interface BatchResult {
  valid: number;
  malformed: number;
  published: number | null;
  retried: boolean;
}

/** How a malformed message is kept in the dead-letter queue. */
export interface DeadLetter {
  deadLetter: "malformed";
  error: string;
  messageId: string;
  body: unknown;
}

export interface BatchDeps {
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

const realTime: BatchDeps = { now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };

/**
 * Folds one queue batch. Every message is validated; malformed ones go to the
 * dead-letter queue. The valid events are archived (the log of record), then
 * rollups, health, audit rows and the dedupe window commit in one D1 transaction,
 * then the snapshot is republished if the batch changed it. Any failure retries
 * the batch — the dedupe window makes that safe — and nothing is acknowledged
 * until it is stored.
 */
export async function handleBatch(batch: MessageBatch<unknown>, env: ConsumerBindings, deps: BatchDeps = realTime): Promise<BatchResult> {
  const events: KeypoolEvent[] = [];
  const dead: DeadLetter[] = [];
  for (const message of batch.messages) {
    const parsed = keypoolEventSchema.safeParse(message.body);
    if (parsed.success) events.push(parsed.data);
    else dead.push({ deadLetter: "malformed", error: parsed.error.issues[0]?.message ?? "invalid", messageId: message.id, body: message.body });
  }
  const result: BatchResult = { valid: events.length, malformed: dead.length, published: null, retried: false };
  try {
    if (dead.length > 0) {
      console.error(`keypool consumer: ${dead.length} malformed message(s) sent to the dead-letter queue (first: ${dead[0]!.error})`);
      await sendToQueue(env.DEAD_LETTERS, dead);
    }
    if (events.length > 0) {
      await appendToArchive(env.ARCHIVE, archiveKey(EVENTS_PREFIX, deps.now(), crypto.randomUUID()), events);
      const settings = await readSettings(env.DB);
      await ingestBatch(env.DB, toBatchRows(events, settings.timeZone), toHealthRows(events, settings));
      result.published = await publishIfStale(events, settings, { db: env.DB, kv: env.SNAPSHOT, ...deps });
      await runReplayJobs(events, env, deps.now);
    }
  } catch (err) {
    console.error(`keypool consumer: batch of ${batch.messages.length} failed, retrying: ${err instanceof Error ? err.message : "error"}`);
    batch.retryAll();
    result.retried = true;
    return result;
  }
  batch.ackAll();
  return result;
}

/** Keeps dead letters in the archive under dead/, where requeue can find them. */
export async function handleDeadLetters(batch: MessageBatch<unknown>, env: ConsumerBindings, deps: BatchDeps = realTime): Promise<void> {
  try {
    await appendToArchive(env.ARCHIVE, archiveKey(DEAD_PREFIX, deps.now(), crypto.randomUUID()), batch.messages.map((m) => m.body));
    batch.ackAll();
  } catch (err) {
    console.error(`keypool consumer: could not archive ${batch.messages.length} dead letter(s), retrying: ${err instanceof Error ? err.message : "error"}`);
    batch.retryAll();
  }
}
