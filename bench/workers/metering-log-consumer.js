/**
 * The metering floor's consumer, for `npm run bench`: keeps the log and
 * nothing more — one D1 row per event (deduplicated by id), one statement per
 * batch, then acknowledges it. See metering-proxy.js; its table is created by
 * scripts/lib/bench-http.mjs.
 */
/** @typedef {{ id: string, ts: number, key: number, model: string, status: number, ms: number, prompt: number, completion: number }} FloorEvent */

export default {
  /**
   * @param {MessageBatch<{ events: FloorEvent[] }>} batch
   * @param {{ DB: D1Database }} env
   */
  async queue(batch, env) {
    const rows = [];
    for (const message of batch.messages) {
      for (const e of message.body.events) rows.push([e.id, e.ts, e.key, e.model, e.status, e.ms, e.prompt, e.completion]);
    }
    await env.DB.prepare(
      "INSERT OR IGNORE INTO floor_events SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 FROM json_each(?1)",
    )
      .bind(JSON.stringify(rows))
      .run();
    batch.ackAll();
  },
};
