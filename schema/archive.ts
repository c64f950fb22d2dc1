import { fnv1a32 } from "./snapshot";

/**
 * How the raw event archive (R2) names its objects: one per batch the consumer
 * folded (`events/`) or dead-lettered (`dead/`), named by when. Replay lists
 * them in order; the admin API finds a request's batches by the time its id
 * carries.
 */

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

/** The consumption time an archived object's key carries (`archiveKey`), or NaN for a key of another shape. */
export function archivedAt(key: string, prefix: string): number {
  return Number(key.slice(prefix.length + 14, prefix.length + 29));
}

/**
 * A batch's request ids as a Bloom filter the archive keeps in the object's
 * custom metadata, so a search for a request reads only the batches that may
 * hold it: 16 bits an id (about one batch in a thousand answers yes wrongly),
 * seven hashes, six bits a character of a URL-safe alphabet — read a bit at a
 * time without decoding — and at most `ID_FILTER_CHARS` characters: custom
 * metadata is limited (2,048 bytes in the local runtime; R2's limits page gives
 * 8,192 for an object's metadata), so a batch of more than about 700 requests
 * gets a fuller filter, and one of thousands a filter that answers yes to most
 * ids — a search then reads it, as it reads a batch with no filter.
 */
export const ID_FILTER_CHARS = 1_900;
const ID_FILTER_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ID_FILTER_HASHES = 7;

/** The filter's bits an id sets, among `bits`. */
function idFilterBits(id: string, bits: number): number[] {
  const h1 = fnv1a32(id);
  const h2 = fnv1a32(`${id}\u0000`) | 1;
  return Array.from({ length: ID_FILTER_HASHES }, (_, i) => (h1 + Math.imul(i, h2)) >>> 0).map((h) => h % bits);
}

/** The filter of these ids (an empty string for none). */
export function idFilter(ids: Iterable<string>): string {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return "";
  // At least 64 characters: a filter of a handful of bits holds few positions apart.
  const chars = Math.min(ID_FILTER_CHARS, Math.max(64, Math.ceil((unique.length * 16) / 6)));
  const values = new Uint8Array(chars);
  for (const id of unique) for (const bit of idFilterBits(id, chars * 6)) values[Math.floor(bit / 6)]! |= 1 << (bit % 6);
  return Array.from(values, (v) => ID_FILTER_ALPHABET[v]).join("");
}

/** Whether a batch with this filter may hold the id: false only when it does not. */
export function idFilterMayHold(filter: string, id: string): boolean {
  if (filter.length === 0) return false;
  return idFilterBits(id, filter.length * 6).every((bit) => (ID_FILTER_ALPHABET.indexOf(filter[Math.floor(bit / 6)]!) >> (bit % 6)) & 1);
}
