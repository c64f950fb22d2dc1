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
