// @ts-check
/**
 * The committed wrangler configs, read: whole (for `npm run deploy`), and their
 * queues as Miniflare options, so the harnesses that start the Workers without
 * `wrangler dev` (the bench, the scale run, the Worker tests) send to and
 * consume from the queues a deploy has — the event queues `EVENTS`,
 * `EVENTS_2`…, the dead-letter queue, the probes queue.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse as parseToml } from "smol-toml";
import { ROOT } from "./stack.mjs";

/**
 * A committed wrangler config, parsed.
 * @param {string} file wrangler.gateway.toml or wrangler.consumer.toml
 */
export const readWranglerConfig = (file) => /** @type {Record<string, any>} */ (parseToml(readFileSync(path.join(ROOT, file), "utf8")));

/**
 * A config's queue producers: binding → queue name.
 * @param {"wrangler.gateway.toml" | "wrangler.consumer.toml"} file
 * @returns {Record<string, { queueName: string }>}
 */
export function queueProducers(file) {
  const producers = /** @type {{ binding: string, queue: string }[]} */ (readWranglerConfig(file).queues?.producers ?? []);
  return Object.fromEntries(producers.map((p) => [p.binding, { queueName: p.queue }]));
}

/**
 * The consumer's queues and how it takes them, from wrangler.consumer.toml;
 * `override` replaces settings on every queue (a test's shorter batch window).
 * @param {{ maxBatchTimeout?: number }} [override]
 * @returns {Record<string, { maxBatchSize?: number, maxBatchTimeout?: number, maxRetries?: number, deadLetterQueue?: string }>}
 */
export function queueConsumers(override = {}) {
  const consumers = /** @type {Record<string, any>[]} */ (readWranglerConfig("wrangler.consumer.toml").queues?.consumers ?? []);
  return Object.fromEntries(
    consumers.map((c) => [
      c.queue,
      {
        ...(c.max_batch_size !== undefined ? { maxBatchSize: c.max_batch_size } : {}),
        ...(c.max_batch_timeout !== undefined ? { maxBatchTimeout: c.max_batch_timeout } : {}),
        ...(c.max_retries !== undefined ? { maxRetries: c.max_retries } : {}),
        ...(c.dead_letter_queue !== undefined ? { deadLetterQueue: c.dead_letter_queue } : {}),
        ...override,
      },
    ]),
  );
}

/** The gateway's event queues (`EVENTS`, `EVENTS_2`…), in wrangler.gateway.toml's order. */
export function eventQueueNames() {
  return Object.entries(queueProducers("wrangler.gateway.toml"))
    .filter(([binding]) => /^EVENTS(_\d+)?$/.test(binding))
    .map(([, p]) => p.queueName);
}
