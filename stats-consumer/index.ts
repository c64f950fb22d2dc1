import { handleBatch, handleDeadLetters, isolateDeps } from "./handle-batch";

/** The dead-letter queue's name (wrangler.consumer.toml). */
const DEAD_LETTER_QUEUE = "keypool-events-dlq";

/** This isolate's clock and memory of the published snapshot, kept between batches. */
const deps = isolateDeps();

export default {
  async queue(batch, env, ctx) {
    const waitUntil = (p: Promise<unknown>) => ctx.waitUntil(p);
    if (batch.queue === DEAD_LETTER_QUEUE) await handleDeadLetters(batch, env, deps, waitUntil);
    else await handleBatch(batch, env, deps, waitUntil);
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
