/** Archive prefixes: consumed batches, and dead letters. */
export const EVENTS_PREFIX = "events/";
export const DEAD_PREFIX = "dead/";

/**
 * The object key of a batch archived at `now`: grouped by hour, and sortable by
 * time (zero-padded epoch ms), so listing a prefix returns batches in the order
 * they were consumed.
 */
export function archiveKey(prefix: string, now: number, batchId: string): string {
  const hour = new Date(now).toISOString().slice(0, 13);
  return `${prefix}${hour}/${String(now).padStart(15, "0")}-${batchId}.ndjson`;
}

/** Writes one NDJSON object: a line per record; its custom metadata says how many. */
export async function appendToArchive(bucket: R2Bucket, key: string, records: unknown[]): Promise<void> {
  if (records.length === 0) return;
  await bucket.put(key, records.map((r) => JSON.stringify(r)).join("\n") + "\n", {
    httpMetadata: { contentType: "application/x-ndjson" },
    customMetadata: { records: String(records.length) },
  });
}

/** Every object key under `prefix`, in key order (consumption order). */
export async function listArchive(bucket: R2Bucket, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await bucket.list({ prefix, cursor, limit: 1000 });
    for (const o of page.objects) keys.push(o.key);
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys.sort();
}

/** The lines of one archived object, parsed as JSON (unparseable lines are skipped). */
export async function readArchived(bucket: R2Bucket, key: string): Promise<unknown[]> {
  const object = await bucket.get(key);
  if (!object) return [];
  const out: unknown[] = [];
  for (const line of (await object.text()).split("\n")) {
    if (line === "") continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a torn line cannot be replayed; the rest of the object still is
    }
  }
  return out;
}
