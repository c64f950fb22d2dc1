import { handleBatch, handleDeadLetters } from "./handle-batch";

/** The dead-letter queue's name (wrangler.consumer.toml). */
const DEAD_LETTER_QUEUE = "keypool-events-dlq";

export default {
  async queue(batch, env) {
    if (batch.queue === DEAD_LETTER_QUEUE) await handleDeadLetters(batch, env);
    else await handleBatch(batch, env);
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
