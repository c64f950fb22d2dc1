import { MAX_EVENTS_PER_MESSAGE, packEvents, type KeypoolEvent } from "../../schema";

/** Where the gateway's events go; the queue in production, a fake in unit tests. */
export type EventSink = (events: KeypoolEvent[]) => Promise<void>;

/**
 * Sends events to the queue packed: one message for up to 100 events (see
 * `packEvents`). A failed send is logged (counts only, never event contents)
 * and swallowed: it must never fail a client's request.
 */
export function queueEventSink(queue: Queue): EventSink {
  return async (events) => {
    for (const message of packEvents(events)) {
      try {
        await queue.send(message, { contentType: "json" });
      } catch (err) {
        console.error(`keypool: queue send failed for ${message.events.length} event(s): ${err instanceof Error ? err.name : "error"}`);
      }
    }
  };
}

interface OpenBatch {
  events: KeypoolEvent[];
  /** Settles once this batch's send has finished. */
  sent: Promise<void>;
}

/**
 * Gathers the events of all requests in this isolate for `delayMs` (a batch
 * takes at most 100; the next request then opens another) and sends them as
 * one queue message. A queue send costs about as much CPU as forwarding the
 * request itself, so one send per request would halve the gateway's
 * throughput; one per batch costs almost nothing.
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

  constructor(private readonly delayMs: number) {}

  /** An event sink for one request, batching through this isolate's batcher. */
  sink(queue: Queue): EventSink {
    return (events) => this.add(queueEventSink(queue), events);
  }

  add(send: EventSink, events: KeypoolEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const joining = this.#open;
    const batch = joining ?? this.#openBatch(send);
    batch.events.push(...events);
    if (batch.events.length >= MAX_EVENTS_PER_MESSAGE) this.#open = null;
    return joining ? Promise.resolve() : batch.sent;
  }

  #openBatch(send: EventSink): OpenBatch {
    const events: KeypoolEvent[] = [];
    const batch: OpenBatch = {
      events,
      sent: new Promise<void>((resolve) => setTimeout(resolve, this.delayMs)).then(() => {
        if (this.#open === batch) this.#open = null;
        return send(events);
      }),
    };
    this.#open = batch;
    return batch;
  }
}
