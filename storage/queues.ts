import { sendBatchGroups } from "../schema";

const encoder = new TextEncoder();

/** Sends message bodies to a queue as JSON, in as few sendBatch calls as its limits allow. */
export async function sendToQueue(queue: Queue, bodies: unknown[]): Promise<void> {
  const groups = sendBatchGroups(bodies, (body) => encoder.encode(JSON.stringify(body) ?? "null").byteLength);
  for (const group of groups) await queue.sendBatch(group.map((body) => ({ body, contentType: "json" as const })));
}
