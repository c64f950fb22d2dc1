import type { KeypoolEvent } from "../../schema";

/** Where the gateway's events go; the queue in production, a fake in unit tests. */
export type EventSink = (events: KeypoolEvent[]) => Promise<void>;

/**
 * Sends events to the queue in one batch. A failed send is logged (counts only,
 * never event contents) and swallowed: it must never fail a client's request.
 */
export function queueEventSink(queue: Queue): EventSink {
  return async (events) => {
    if (events.length === 0) return;
    try {
      await queue.sendBatch(events.map((body) => ({ body, contentType: "json" as const })));
    } catch (err) {
      console.error(`keypool: queue send failed for ${events.length} event(s): ${err instanceof Error ? err.name : "error"}`);
    }
  };
}
