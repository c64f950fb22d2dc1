import type { KeypoolEvent } from "../../schema";

/** Where the gateway's events go; the queue in production, a fake in unit tests. */
export type EventSink = (events: KeypoolEvent[]) => Promise<void>;

/** The most messages one `sendBatch` takes. */
const QUEUE_BATCH = 100;

/**
 * Sends events to the queue, one batch per 100. A failed send is logged (counts
 * only, never event contents) and swallowed: it must never fail a client's request.
 */
export function queueEventSink(queue: Queue): EventSink {
  return async (events) => {
    for (let i = 0; i < events.length; i += QUEUE_BATCH) {
      const chunk = events.slice(i, i + QUEUE_BATCH);
      try {
        await queue.sendBatch(chunk.map((body) => ({ body, contentType: "json" as const })));
      } catch (err) {
        console.error(`keypool: queue send failed for ${chunk.length} event(s): ${err instanceof Error ? err.name : "error"}`);
      }
    }
  };
}

interface OpenBatch {
  events: KeypoolEvent[];
  /** Settles once this batch's send has finished. */
  sent: Promise<void>;
  /** Sends now instead of when the timer fires. */
  sendNow: () => void;
}

/**
 * Gathers the events of all requests in this isolate for up to `delayMs` (or
 * until 100 are waiting) and sends them in one queue call. A queue send costs
 * about as much CPU as forwarding the request itself, so one send per request
 * would halve the gateway's throughput; one per batch costs almost nothing.
 *
 * Every caller gets the promise of the send that carries its events and hands
 * it to its own `ctx.waitUntil`, so no request finishes before its events are
 * on the queue. The send runs in the request that opened the batch, which that
 * request's own `waitUntil` keeps alive.
 */
export class EventBatcher {
  #open: OpenBatch | null = null;

  constructor(private readonly delayMs: number) {}

  /** An event sink for one request, batching through this isolate's batcher. */
  sink(queue: Queue): EventSink {
    return (events) => this.add(queueEventSink(queue), events);
  }

  add(send: EventSink, events: KeypoolEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const batch = this.#open ?? this.#openBatch(send);
    batch.events.push(...events);
    if (batch.events.length >= QUEUE_BATCH) {
      this.#open = null;
      batch.sendNow();
    }
    return batch.sent;
  }

  #openBatch(send: EventSink): OpenBatch {
    let sendNow!: () => void;
    const due = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.delayMs);
      sendNow = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    const batch: OpenBatch = {
      events: [],
      sendNow: () => sendNow(),
      sent: due.then(() => {
        if (this.#open === batch) this.#open = null;
        return send(batch.events);
      }),
    };
    this.#open = batch;
    return batch;
  }
}
