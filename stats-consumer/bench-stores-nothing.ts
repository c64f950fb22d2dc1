/**
 * A stats consumer that stores no attempt, for `npm run bench` only: its own
 * entry point (never imported by stats-consumer/index.ts), so no deployed bundle
 * contains it. It validates every event like the real one and still publishes
 * the snapshot after admin and probe events (the gateway serves nothing
 * without it), but archives and folds nothing: side by side with the real
 * consumer it shows what storing the events costs.
 */
import { eventsOfMessage, keypoolEventSchema, type KeypoolEvent } from "../schema";
import { publishIfStale } from "./publish";
import { readSettings } from "./storage/snapshot-store";

export default {
  async queue(batch, env) {
    const changes: KeypoolEvent[] = [];
    for (const message of batch.messages) {
      for (const body of eventsOfMessage(message.body)) {
        const parsed = keypoolEventSchema.safeParse(body);
        if (parsed.success && parsed.data.type !== "attempt") changes.push(parsed.data);
      }
    }
    if (changes.length > 0) {
      const deps = { db: env.DB, kv: env.SNAPSHOT, now: Date.now, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
      await publishIfStale(changes, await readSettings(env.DB), deps);
    }
    batch.ackAll();
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
