import { MAX_EVENTS_PER_MESSAGE, type KeypoolEvent } from "../../schema";

/** Where the gateway's events go; the queue in production (`queueEventSink`), a fake in unit tests. */
export type EventSink = (events: KeypoolEvent[]) => Promise<void>;

interface OpenBatch {
  events: KeypoolEvent[];
  /** Settles once this batch's send has finished. */
  sent: Promise<void>;
}

/** How long an attempt event may wait for others to share its queue send. */
export const EVENT_BATCH_DELAY_MS = 20;
/** Batches that are not full one isolate sends a second (see `EventBatcher`; docs/scale.md for why this many). */
export const EVENT_MESSAGES_PER_SECOND = 2;

/** The batcher's time: the wall clock in production, a simulated one in `npm run scale`. */
export interface BatchClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

const WALL_CLOCK: BatchClock = { now: () => Date.now(), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) };

/**
 * Gathers the events of all requests in this isolate for `delayMs` (a batch
 * takes at most 100; the next request then opens another) and sends them as
 * one queue message. A queue send costs about as much CPU as forwarding the
 * request itself, so one send per request would cost the gateway much of its
 * throughput; one per batch costs almost nothing.
 *
 * An isolate also sends at most `messagesPerSecond` batches that are not full:
 * a batch opened sooner than that after the last one stays open until its turn
 * (and gathers what comes meanwhile). A queue takes a bounded number of messages
 * a second, and the messages a second grow with the busy isolates, not with the
 * requests: a thousand isolates with a few requests a second each would
 * otherwise send a message per request. A full batch does not use a turn — its
 * message carries as many events as any can — so a busy isolate is never held
 * back by it; a quiet one sends its first batch after `delayMs`, as before.
 *
 * The request that opens a batch owns it: its timer and its queue call run in
 * that request's context, and the promise it gets (for its `ctx.waitUntil`)
 * settles once the batch is sent, which keeps the request alive until then.
 * Requests that join get a settled promise: waiting on another request's
 * promise, or settling it, is cross-request work that workerd cancels (and
 * warns about) once that request is done — their events ride in the owner's
 * send instead, and nothing here ever touches another request's promise or timer.
 */
export class EventBatcher {
  #open: OpenBatch | null = null;
  /** The earliest a batch opened now may be sent: the last turn taken plus one turn's length. */
  #nextTurn = 0;
  readonly #turnMs: number;

  constructor(
    private readonly delayMs: number,
    messagesPerSecond = Number.POSITIVE_INFINITY,
    private readonly clock: BatchClock = WALL_CLOCK,
  ) {
    this.#turnMs = 1000 / messagesPerSecond;
  }

  /** An event sink for one request, batching through this isolate's batcher into `send`. */
  sink(send: EventSink): EventSink {
    return (events) => this.add(send, events);
  }

  add(send: EventSink, events: KeypoolEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const joining = this.#open;
    const batch = joining ?? this.#openBatch(send);
    batch.events.push(...events);
    if (batch.events.length >= MAX_EVENTS_PER_MESSAGE) {
      this.#open = null;
      // Full: it gives its turn back, so the next batch may go with it.
      this.#nextTurn -= this.#turnMs;
    }
    return joining ? Promise.resolve() : batch.sent;
  }

  #openBatch(send: EventSink): OpenBatch {
    const now = this.clock.now();
    const sendAt = Math.max(now + this.delayMs, this.#nextTurn);
    this.#nextTurn = sendAt + this.#turnMs;
    const events: KeypoolEvent[] = [];
    const batch: OpenBatch = {
      events,
      sent: this.clock.sleep(sendAt - now).then(() => {
        if (this.#open === batch) this.#open = null;
        return send(events);
      }),
    };
    this.#open = batch;
    return batch;
  }
}
