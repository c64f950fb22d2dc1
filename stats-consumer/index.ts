import { handleBatch, handleDeadLetters, isDeadLetterQueue, isolateDeps } from "./handle-batch";

/** This isolate's clock and memory of the published snapshot, kept between batches. */
const deps = isolateDeps();

export default {
  async queue(batch, env, ctx) {
    const waitUntil = (p: Promise<unknown>) => ctx.waitUntil(p);
    if (isDeadLetterQueue(batch.queue)) await handleDeadLetters(batch, env, deps, waitUntil);
    else await handleBatch(batch, env, deps, waitUntil);
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
