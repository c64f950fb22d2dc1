/**
 * The stats consumer with injected faults, for `npm run chaos` only: it is its
 * own entry point (never imported by stats-consumer/index.ts), so no deployed
 * bundle contains it. The CONSUMER_FAULTS var (JSON) picks the faults:
 *
 *   redeliver   every batch is handled twice in a row, as a queue redelivering a
 *               batch whose acknowledgement was lost would, and its events are
 *               sent to the queue once more, to come back later inside other batches;
 *   d1FailRate  that share of batches meets a failing D1: for half of them D1 is
 *               down (every write of that handling fails, so the queue retries the
 *               batch), for half the first write commits and its answer is lost
 *               (the consumer then folds the batch event by event, and must count
 *               nothing twice);
 *   seed        the fault draws' seed.
 *
 * Whatever the faults, the rollups must end up exactly as without them.
 */
import { eventsOfMessage, packEvents } from "../schema";
import { seeded } from "../tools/seeded.mjs";
import { handleBatch, handleDeadLetters } from "./handle-batch";
import { sendToQueue } from "./storage/queues";

interface Faults {
  redeliver: boolean;
  d1FailRate: number;
  seed: number;
}

/** What this isolate has injected so far (one isolate per consumer in local runs). */
const injected = { batches: 0, handledTwice: 0, resent: 0, d1FailedBefore: 0, d1FailedAfter: 0 };
/** Event ids already sent back to the queue once, so a redelivered event is not redelivered again. */
const resentIds = new Set<string>();
let draw: (() => number) | null = null;

function parseFaults(json: string | undefined): Faults {
  const raw = (json ? JSON.parse(json) : {}) as Partial<Faults>;
  return { redeliver: raw.redeliver === true, d1FailRate: Number(raw.d1FailRate ?? 0), seed: Number(raw.seed ?? 1) };
}

/** `db`, except that every batch() fails ("down"), or the first commits and then fails ("answer lost"). */
function failing(db: D1Database, how: "down" | "answer lost"): D1Database {
  let failed = false;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop !== "batch") {
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return async (statements: D1PreparedStatement[]) => {
        if (how === "down") {
          if (!failed) injected.d1FailedBefore++;
          failed = true;
          throw new Error("D1_ERROR: injected fault: the database is unavailable");
        }
        if (failed) return target.batch(statements);
        failed = true;
        await target.batch(statements);
        injected.d1FailedAfter++;
        throw new Error("D1_ERROR: injected fault: the write committed but its answer was lost");
      };
    },
  });
}

/** The same messages again, as a second delivery whose acknowledgements go nowhere. */
function replica(batch: MessageBatch<unknown>): MessageBatch<unknown> {
  const noop = () => {};
  return {
    queue: batch.queue,
    metadata: batch.metadata,
    messages: batch.messages.map((m) => ({ id: m.id, timestamp: m.timestamp, body: m.body, attempts: m.attempts + 1, ack: noop, retry: noop })),
    ackAll: noop,
    retryAll: noop,
  };
}

export default {
  async queue(batch, env) {
    if (batch.queue === "keypool-events-dlq") return handleDeadLetters(batch, env);
    const faults = parseFaults(env.CONSUMER_FAULTS);
    draw ??= seeded(faults.seed);
    injected.batches++;
    const r = draw();
    const db = r < faults.d1FailRate / 2 ? failing(env.DB, "down") : r < faults.d1FailRate ? failing(env.DB, "answer lost") : env.DB;
    const result = await handleBatch(batch, { ...env, DB: db });
    if (faults.redeliver && !result.retried) {
      await handleBatch(replica(batch), env);
      injected.handledTwice++;
      const again = batch.messages.flatMap((m) => eventsOfMessage(m.body)).filter((e) => {
        const id = (e as { id?: unknown } | null)?.id;
        return typeof id === "string" && !resentIds.has(id) && resentIds.add(id);
      });
      if (again.length > 0) {
        await sendToQueue(env.EVENTS, packEvents(again));
        injected.resent += again.length;
      }
    }
    console.log(`keypool consumer faults: ${JSON.stringify(injected)}`);
  },
} satisfies ExportedHandler<ConsumerEnv & { CONSUMER_FAULTS?: string }, unknown>;
