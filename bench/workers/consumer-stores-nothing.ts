/**
 * A stats consumer that stores no attempt, for `npm run bench` only (never
 * deployed). It validates every event like the real one and still publishes
 * the snapshot after admin and probe events (the gateway serves nothing
 * without it), but archives and folds nothing: side by side with the real
 * consumer it shows what storing the events costs.
 */
import { isolateDeps, readBatch } from "../../stats-consumer/handle-batch";
import { publishIfStale } from "../../stats-consumer/publish";
import { readSettings } from "../../storage/settings";

const isolate = isolateDeps();

export default {
  async queue(batch, env) {
    const changes = readBatch(batch).events.filter((e) => e.type !== "attempt");
    if (changes.length > 0) {
      await publishIfStale(changes, await readSettings(env.DB), { ...isolate, db: env.DB, kv: env.SNAPSHOT });
    }
    batch.ackAll();
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
