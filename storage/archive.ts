import { archiveKey, archivedAt } from "../schema";

/** Writes one NDJSON object: a line per record; its custom metadata says how many, with any `metadata` given. */
export async function appendToArchive(bucket: R2Bucket, key: string, records: unknown[], metadata: Record<string, string> = {}): Promise<void> {
  if (records.length === 0) return;
  await bucket.put(key, records.map((r) => JSON.stringify(r)).join("\n") + "\n", {
    httpMetadata: { contentType: "application/x-ndjson" },
    customMetadata: { records: String(records.length), ...metadata },
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

/** An archived object a listing found, with its custom metadata. */
interface Listed {
  key: string;
  metadata: Record<string, string> | undefined;
}

/**
 * The objects under `prefix` consumed from `from` to `until` (inclusive), in
 * consumption order, with their custom metadata: a list call for each page,
 * counted in `lists`, which stops the listing once `lists.max` are made.
 */
async function* archivedBetween(
  bucket: R2Bucket,
  prefix: string,
  from: number,
  until: number,
  lists: { made: number; max: number; cut: boolean },
): AsyncGenerator<Listed> {
  for (let hour = Math.floor(from / 3_600_000) * 3_600_000; hour <= until; hour += 3_600_000) {
    const hourPrefix = archiveKey(prefix, hour, "").slice(0, prefix.length + 14);
    let cursor: string | undefined;
    do {
      if (lists.made >= lists.max) {
        lists.cut = true;
        return;
      }
      lists.made++;
      const page = await bucket.list({
        prefix: hourPrefix,
        startAfter: `${hourPrefix}${String(from - 1).padStart(15, "0")}`,
        cursor,
        limit: 1000,
        include: ["customMetadata"],
      });
      for (const o of page.objects) {
        if (archivedAt(o.key, prefix) > until) return;
        yield { key: o.key, metadata: o.customMetadata };
      }
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor);
  }
}

/** What a search of the archive read and found. */
export interface ArchiveSearch {
  /** The records that matched, in the order they were archived. */
  found: unknown[];
  /** Objects listed, objects read (those `mayHold` did not rule out), and list calls made. */
  listed: number;
  read: number;
  lists: number;
  /** The consumption time of the last object listed (null: none was). */
  lastAt: number | null;
  /** Whether it stopped at its budget of reads or lists with more of its span left. */
  budgetSpent: boolean;
}

/** Objects a search reads at once (a Worker keeps six connections open). */
const SEARCH_PARALLEL = 6;

const decoder = new TextDecoder();

/**
 * Reads the batches archived under `prefix` from `from` to `until`, oldest
 * first, a few at a time — those whose custom metadata `mayHold` does not rule
 * out — and keeps the records of lines holding `needle` that `match` accepts,
 * until `done` says the records found are enough, or `maxObjects` have been
 * read, or `maxLists` list calls made. Only lines holding the needle are
 * parsed, so a search costs little more than its lists and reads.
 */
export async function searchArchive(
  bucket: R2Bucket,
  search: {
    prefix: string;
    from: number;
    until: number;
    needle: string;
    mayHold?: (metadata: Record<string, string> | undefined) => boolean;
    match: (record: unknown) => boolean;
    done: (found: unknown[]) => boolean;
    maxObjects: number;
    maxLists: number;
  },
): Promise<ArchiveSearch> {
  const lists = { made: 0, max: search.maxLists, cut: false };
  const result: ArchiveSearch = { found: [], listed: 0, read: 0, lists: 0, lastAt: null, budgetSpent: false };
  const objects = archivedBetween(bucket, search.prefix, search.from, search.until, lists);
  /** The next object to read, past those the metadata rules out; null at the end of the listing. */
  const next = async (): Promise<string | null> => {
    for (;;) {
      const o = await objects.next();
      if (o.done) return null;
      result.listed++;
      result.lastAt = archivedAt(o.value.key, search.prefix);
      if (!search.mayHold || search.mayHold(o.value.metadata)) return o.value.key;
    }
  };
  for (;;) {
    const group: string[] = [];
    let ended = false;
    while (group.length < SEARCH_PARALLEL && result.read + group.length < search.maxObjects) {
      const key = await next();
      if (key === null) {
        ended = true;
        break;
      }
      group.push(key);
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
    result.lists = lists.made;
    if (search.done(result.found)) return result;
    if (ended) {
      // The listing stopped at its budget of lists, or the span was read to its end.
      result.budgetSpent = lists.cut;
      return result;
    }
    if (result.read >= search.maxObjects) {
      // Stopped reading with more of the span listed or left to list.
      result.budgetSpent = !(await objects.next()).done;
      result.lists = lists.made;
      return result;
    }
  }
}
