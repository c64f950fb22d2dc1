import { runScheduled } from "../scheduler";
import { createApp } from "./app";
import { ClientLimiter } from "./logic/client-limits";
import { LocalObservations } from "./logic/local-observations";
import { queueEventSink } from "./storage/event-sink";

const app = createApp({ observations: new LocalObservations(), limits: new ClientLimiter() });

export default {
  fetch: app.fetch,
  /** The scheduler's cron: its code lives in scheduler/, this Worker only hosts it. */
  async scheduled(_controller, env, ctx) {
    ctx.waitUntil(
      runScheduled({ db: env.DB, kv: env.SNAPSHOT, emit: queueEventSink(env.EVENTS), now: Date.now }).then((r) =>
        console.log(`keypool scheduler: pruned ${JSON.stringify(r.pruned)}, snapshot refresh ${r.refreshRequested ? "requested" : "not needed"}`),
      ),
    );
  },
} satisfies ExportedHandler<GatewayEnv>;
