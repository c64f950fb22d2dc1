/** Sends message bodies to a queue as JSON, in batches of 100 (the most one sendBatch takes). */
export async function sendToQueue(queue: Queue, bodies: unknown[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 100) {
    await queue.sendBatch(bodies.slice(i, i + 100).map((body) => ({ body, contentType: "json" as const })));
  }
}
