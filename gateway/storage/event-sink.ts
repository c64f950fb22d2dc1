import { QUEUE_MESSAGE_LIMIT_BYTES, packEvents, sendBatchGroups, type PackedEvents } from "../../schema";
import type { EventSink } from "../logic/event-batcher";

export type { EventSink } from "../logic/event-batcher";

/**
 * The bindings events travel through: the event queues, and D1 for the outbox.
 * `EVENTS` is the first queue; `EVENTS_2`, `EVENTS_3`… (wrangler.gateway.toml)
 * are the others, found by name.
 */
export interface EventPipe {
  EVENTS: Queue;
  DB: D1Database;
}

/** Whether a binding's name is an event queue's: `EVENTS`, `EVENTS_2`, `EVENTS_3`… */
export function isEventQueueBinding(name: string): boolean {
  return /^EVENTS(_\d+)?$/.test(name);
}

const queuesOf = new WeakMap<EventPipe, Queue[]>();

/** The event queues `pipe` binds: `EVENTS`, then `EVENTS_2`, `EVENTS_3`… in order of their number. */
export function eventQueues(pipe: EventPipe): Queue[] {
  let queues = queuesOf.get(pipe);
  if (!queues) {
    const others: [number, Queue][] = [];
    for (const [name, value] of Object.entries(pipe))
      if (name !== "EVENTS" && isEventQueueBinding(name) && value) others.push([Number(name.slice("EVENTS_".length)), value as Queue]);
    queues = [pipe.EVENTS, ...others.sort((a, b) => a[0] - b[0]).map(([, queue]) => queue)];
    queuesOf.set(pipe, queues);
  }
  return queues;
}

/** This isolate's next turn: its messages take the event queues in turn, from a random one, so each queue gets an equal share. */
let turn = -1;

/** The position in `queues` the next message goes to first. */
function takeTurn(queues: readonly Queue[]): number {
  if (turn < 0) turn = Math.floor(Math.random() * 1_000_000);
  return turn++ % queues.length;
}

/** The event queue this isolate's next message goes to. */
export function nextEventQueue(pipe: EventPipe): Queue {
  const queues = eventQueues(pipe);
  return queues[takeTurn(queues)]!;
}

/** Waits before the second and third queue send of a message. */
const SEND_RETRY_DELAYS_MS = [50, 250] as const;

const encoder = new TextEncoder();

/**
 * Sends events to the queues packed: one message for up to 100 events (see
 * `packEvents`), each message to the next event queue in this isolate's turn.
 * A send that fails is tried twice more, each time on the next queue; a message
 * the queues still refuse is kept in D1's event outbox, which the scheduler sends on
 * within a minute — so an event is queued, kept, or (only when D1 fails too)
 * logged as lost, by count, never by contents. It never throws; the request
 * path calls it in `waitUntil`, after the answer.
 */
export function queueEventSink(pipe: EventPipe, retryDelaysMs: readonly number[] = SEND_RETRY_DELAYS_MS): EventSink {
  return async (events) => {
    for (const message of packEvents(events)) {
      if (await sendWithRetries(eventQueues(pipe), message, retryDelaysMs)) continue;
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

async function sendWithRetries(queues: readonly Queue[], message: PackedEvents, retryDelaysMs: readonly number[]): Promise<boolean> {
  const first = takeTurn(queues);
  for (let attempt = 0; ; attempt++) {
    try {
      await queues[(first + attempt) % queues.length]!.send(message, { contentType: "json" });
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
 * Sends the outbox's messages to the event queues (a group to each in turn),
 * oldest first, deleting each group once it is sent (a crash between the two
 * sends it again; the consumer dedupes). Stops at the first failed send (it
 * throws; the rest waits for the next run) or when its time budget is spent.
 * Returns the events sent and the messages still waiting.
 */
export async function drainEventOutbox(pipe: EventPipe, budgetMs = OUTBOX_DRAIN_BUDGET_MS): Promise<{ sent: number; waiting: number }> {
  const stopAt = Date.now() + budgetMs;
  let sent = 0;
  for (let more = true; more && Date.now() < stopAt;) {
    const { results } = await pipe.DB.prepare("SELECT id, events, body FROM event_outbox ORDER BY id LIMIT ?1")
      .bind(OUTBOX_PAGE_ROWS)
      .all<{ id: number; events: number; body: string }>();
    for (const group of sendBatchGroups(results, (row) => encoder.encode(row.body).byteLength)) {
      await nextEventQueue(pipe).sendBatch(group.map((row) => ({ body: JSON.parse(row.body) as PackedEvents, contentType: "json" as const })));
      await pipe.DB.prepare("DELETE FROM event_outbox WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(JSON.stringify(group.map((row) => row.id)))
        .run();
      sent += group.reduce((n, row) => n + row.events, 0);
    }
    more = results.length === OUTBOX_PAGE_ROWS;
  }
  return { sent, waiting: (await eventOutboxBacklog(pipe.DB)).messages };
}
