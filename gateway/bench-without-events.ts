/**
 * The gateway with its attempt events dropped, for `npm run bench` only: its
 * own entry point (never imported by gateway/index.ts), so no deployed bundle
 * contains it. Side by side with the real gateway it shows what the events
 * cost — their queue sends and everything the consumer then does with them.
 */
import { createApp } from "./app";
import { ClientLimiter } from "./logic/client-limits";
import { LocalObservations } from "./logic/local-observations";
import { EventBatcher, type EventSink } from "./storage/event-sink";

class DroppingBatcher extends EventBatcher {
  override sink(): EventSink {
    return async () => {};
  }
}

const app = createApp({
  observations: new LocalObservations(),
  limits: new ClientLimiter(),
  events: new DroppingBatcher(0),
  probe: async () => [],
});

export default { fetch: app.fetch } satisfies ExportedHandler<GatewayEnv>;
