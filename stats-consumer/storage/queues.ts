/** One sendBatch takes at most 100 messages and 256 KB; groups stay under these. */
const MAX_BATCH_MESSAGES = 100;
const MAX_BATCH_BYTES = 200_000;

const encoder = new TextEncoder();

/** Sends message bodies to a queue as JSON, in as few sendBatch calls as its limits allow. */
export async function sendToQueue(queue: Queue, bodies: unknown[]): Promise<void> {
  let group: unknown[] = [];
  let bytes = 0;
  const flush = async () => {
    if (group.length > 0) await queue.sendBatch(group.map((body) => ({ body, contentType: "json" as const })));
    group = [];
    bytes = 0;
  };
  for (const body of bodies) {
    const size = encoder.encode(JSON.stringify(body) ?? "null").byteLength;
    if (group.length === MAX_BATCH_MESSAGES || (group.length > 0 && bytes + size > MAX_BATCH_BYTES)) await flush();
    group.push(body);
    bytes += size;
  }
  await flush();
}
