import { archiveKey, archivedAt } from "../schema";

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

/** The object keys under `prefix` consumed from `from` to `until` (inclusive), in consumption order, listed a page at a time. */
async function* archivedBetween(bucket: R2Bucket, prefix: string, from: number, until: number): AsyncGenerator<string> {
  for (let hour = Math.floor(from / 3_600_000) * 3_600_000; hour <= until; hour += 3_600_000) {
    const hourPrefix = archiveKey(prefix, hour, "").slice(0, prefix.length + 14);
    let cursor: string | undefined;
    do {
      const page = await bucket.list({ prefix: hourPrefix, startAfter: `${hourPrefix}${String(from - 1).padStart(15, "0")}`, cursor, limit: 1000 });
      for (const o of page.objects) {
        if (archivedAt(o.key, prefix) > until) return;
        yield o.key;
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}

/** What a search of the archive read and found. */
export interface ArchiveSearch {
  /** The records that matched, in the order they were archived. */
  found: unknown[];
  /** Objects read. */
  read: number;
  /** The consumption time of the last object read (null: none was). */
  lastAt: number | null;
  /** Whether it stopped at its budget of objects with more of its span left to read. */
  budgetSpent: boolean;
}

/** Objects a search reads at once (a Worker keeps six connections open). */
const SEARCH_PARALLEL = 6;

const decoder = new TextDecoder();

/**
 * Reads the batches archived under `prefix` from `from` to `until`, oldest
 * first, a few at a time, and keeps the records of lines holding `needle` that
 * `match` accepts, until `done` says the records found are enough or
 * `maxObjects` have been read. Only lines holding the needle are parsed, so a
 * search costs little more than reading the objects.
 */
export async function searchArchive(
  bucket: R2Bucket,
  search: {
    prefix: string;
    from: number;
    until: number;
    needle: string;
    match: (record: unknown) => boolean;
    done: (found: unknown[]) => boolean;
    maxObjects: number;
  },
): Promise<ArchiveSearch> {
  const result: ArchiveSearch = { found: [], read: 0, lastAt: null, budgetSpent: false };
  const keys = archivedBetween(bucket, search.prefix, search.from, search.until);
  for (;;) {
    const group: string[] = [];
    while (group.length < SEARCH_PARALLEL && result.read + group.length < search.maxObjects) {
      const next = await keys.next();
      if (next.done) break;
      group.push(next.value);
    }
    if (group.length === 0) {
      // Out of budget with more to read, or the span read to its end.
      result.budgetSpent = result.read >= search.maxObjects && !(await keys.next()).done;
      return result;
    }
    // Decoded here: the objects are NDJSON, which the runtime warns about reading with text().
    const texts = await Promise.all(group.map(async (key) => decoder.decode(await (await bucket.get(key))?.arrayBuffer())));
    for (const text of texts) {
      if (!text.includes(search.needle)) continue;
      for (const line of text.split("\n")) {
        if (!line.includes(search.needle)) continue;
        try {
          const record: unknown = JSON.parse(line);
          if (search.match(record)) result.found.push(record);
        } catch {
          // a torn line holds nothing to find
        }
      }
    }
    result.read += group.length;
    result.lastAt = archivedAt(group.at(-1)!, search.prefix);
    if (search.done(result.found)) return result;
  }
}
