/**
 * The gateway with its attempt events dropped, for `npm run bench` only (never
 * deployed): side by side with the real gateway it shows what the gateway
 * alone costs, and what the events add — their queue sends and everything the
 * consumer then does with them.
 */
import { createIsolateState, createWorker } from "../../gateway/worker";
import { EventBatcher, type EventSink } from "../../gateway/logic/event-batcher";

class DroppingBatcher extends EventBatcher {
  override sink(): EventSink {
    return async () => {};
  }
}

export default createWorker({ ...createIsolateState(), events: new DroppingBatcher(0), probe: async () => [] });
