import type { KeypoolEvent } from "../../schema";

/** Where the gateway's events go; the queue in production, a fake in unit tests. */
export type EventSink = (events: KeypoolEvent[]) => Promise<void>;

/**
 * Sends events to the queue, one batch per 100 (the most a batch takes). A failed
 * send is logged (counts only, never event contents) and swallowed: it must never
 * fail a client's request.
 */
export function queueEventSink(queue: Queue): EventSink {
  return async (events) => {
    for (let i = 0; i < events.length; i += 100) {
      const chunk = events.slice(i, i + 100);
      try {
        await queue.sendBatch(chunk.map((body) => ({ body, contentType: "json" as const })));
      } catch (err) {
        console.error(`keypool: queue send failed for ${chunk.length} event(s): ${err instanceof Error ? err.name : "error"}`);
      }
    }
  };
}
