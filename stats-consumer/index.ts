import { handleBatch } from "./handle-batch";

export default {
  async queue(batch, env) {
    await handleBatch(batch, env);
  },
} satisfies ExportedHandler<ConsumerEnv, unknown>;
