/**
 * Which of the fold's databases holds what belongs to a key or a request: the
 * consumer writes there (stats-consumer/logic/fold-shards.ts) and the admin API
 * reads there (storage/fold-databases.ts), so both take it from here.
 */

/**
 * The database of the `n` bound (DB, DB_2, DB_3…) that folds what belongs to
 * `id` (a key's or a request's): with DB alone, DB; with several, one of the
 * others — the first keeps the configuration, the audit log and the kept
 * answers, whose reads (every key, for the snapshot, the headroom, the key list
 * and the usage publish) would otherwise share it with a key's folds. Chosen by
 * FNV-1a of the id's UTF-16 code units, so every runtime and every redelivery
 * agrees. Changing `n` moves nearly every id: the databases are then refolded
 * from the archive, never moved row by row.
 */
export function foldShardOf(id: string, n: number): number {
  if (n <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return 1 + ((h >>> 0) % (n - 1));
}
