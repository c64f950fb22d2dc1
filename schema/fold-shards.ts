/**
 * Which of the fold's databases holds what belongs to a key or a request: the
 * consumer writes there (stats-consumer/logic/fold-shards.ts) and the admin API
 * reads there (storage/fold-databases.ts), so both take it from here.
 */

/**
 * The database of `n` that folds what belongs to `id` (a key's or a request's):
 * FNV-1a of its UTF-16 code units, so every runtime and every redelivery agrees.
 * Changing `n` moves nearly every id: the databases are then rebuilt from the
 * archive, never moved row by row.
 */
export function foldShardOf(id: string, n: number): number {
  if (n <= 1) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % n;
}
