import { QUEUE_MESSAGE_LIMIT_BYTES, packEvents, sendBatchGroups, type PackedEvents } from "../../schema";
import type { EventSink } from "../logic/event-batcher";

export type { EventSink } from "../logic/event-batcher";

/** The bindings events travel through: the queue, and D1 for the outbox. */
export interface EventPipe {
  EVENTS: Queue;
  DB: D1Database;
}

/** Waits before the second and third queue send of a message. */
const SEND_RETRY_DELAYS_MS = [50, 250] as const;

const encoder = new TextEncoder();

/**
 * Sends events to the queue packed: one message for up to 100 events (see
 * `packEvents`). A send that fails is tried twice more; a message the queue
 * still refuses is kept in D1's event outbox, which the scheduler sends on
 * within a minute — so an event is queued, kept, or (only when D1 fails too)
 * logged as lost, by count, never by contents. It never throws; the request
 * path calls it in `waitUntil`, after the answer.
 */
export function queueEventSink(pipe: EventPipe, retryDelaysMs: readonly number[] = SEND_RETRY_DELAYS_MS): EventSink {
  return async (events) => {
    for (const message of packEvents(events)) {
      if (await sendWithRetries(pipe.EVENTS, message, retryDelaysMs)) continue;
      const body = JSON.stringify(message);
      if (encoder.encode(body).byteLength > QUEUE_MESSAGE_LIMIT_BYTES) {
        // One event too large for any message: the queue will never take it, so keeping it would block the outbox.
        console.error(`keypool: ${message.events.length} event(s) lost: larger than a queue message may be`);
        continue;
      }
      try {
        await pipe.DB.prepare("INSERT INTO event_outbox (created_at, events, body) VALUES (?1, ?2, ?3)").bind(Date.now(), message.events.length, body).run();
        console.error(`keypool: queue send failed; ${message.events.length} event(s) kept in the outbox`);
      } catch (err) {
        console.error(`keypool: queue send and outbox write failed; ${message.events.length} event(s) lost: ${err instanceof Error ? err.name : "error"}`);
      }
    }
  };
}

async function sendWithRetries(queue: Queue, message: PackedEvents, retryDelaysMs: readonly number[]): Promise<boolean> {
  for (let attempt = 0; ; attempt++) {
    try {
      await queue.send(message, { contentType: "json" });
      return true;
    } catch {
      const delay = retryDelaysMs[attempt];
      if (delay === undefined) return false;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

/** What the event outbox holds: messages and the events in them. */
export async function eventOutboxBacklog(db: D1Database): Promise<{ messages: number; events: number }> {
  const row = await db
    .prepare("SELECT COUNT(*) AS messages, COALESCE(SUM(events), 0) AS events FROM event_outbox")
    .first<{ messages: number; events: number }>();
  return { messages: row?.messages ?? 0, events: row?.events ?? 0 };
}

/** Outbox rows read at a time (each up to 120 kB). */
const OUTBOX_PAGE_ROWS = 100;
/** A drain reads no new page after this long; the cron drains again a minute later. */
const OUTBOX_DRAIN_BUDGET_MS = 10_000;

/**
 * Sends the outbox's messages to the queue, oldest first, deleting each group
 * once it is sent (a crash between the two sends it again; the consumer
 * dedupes). Stops at the first failed send (it throws; the rest waits for the
 * next run) or when its time budget is spent. Returns the events sent and the
 * messages still waiting.
 */
export async function drainEventOutbox(pipe: EventPipe, budgetMs = OUTBOX_DRAIN_BUDGET_MS): Promise<{ sent: number; waiting: number }> {
  const stopAt = Date.now() + budgetMs;
  let sent = 0;
  for (let more = true; more && Date.now() < stopAt;) {
    const { results } = await pipe.DB.prepare("SELECT id, events, body FROM event_outbox ORDER BY id LIMIT ?1")
      .bind(OUTBOX_PAGE_ROWS)
      .all<{ id: number; events: number; body: string }>();
    for (const group of sendBatchGroups(results, (row) => encoder.encode(row.body).byteLength)) {
      await pipe.EVENTS.sendBatch(group.map((row) => ({ body: JSON.parse(row.body) as PackedEvents, contentType: "json" as const })));
      await pipe.DB.prepare("DELETE FROM event_outbox WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(JSON.stringify(group.map((row) => row.id)))
        .run();
      sent += group.reduce((n, row) => n + row.events, 0);
    }
    more = results.length === OUTBOX_PAGE_ROWS;
  }
  return { sent, waiting: (await eventOutboxBacklog(pipe.DB)).messages };
}
