/**
 * Which of the fold's databases holds what belongs to a key, a client key or a
 * request, and the layout each holds: the consumer writes there
 * (stats-consumer/logic/fold-shards.ts), the admin API reads there
 * (storage/fold-databases.ts) and deploy reads the layout, so all take it from
 * here.
 */

/**
 * The database of the `n` bound (DB, DB_2, DB_3…) that folds what belongs to
 * `id` (a key's, a client key's or a request's): with DB alone, DB; with
 * several, one of the others — the first keeps the configuration, the audit log and the kept
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

/**
 * The fold's layout, kept in each fold database (migration 0026, `fold_layout`):
 * which of how many databases it is, "1/1" for a deployment with `DB` alone.
 * A key's rows live in the database its id hashes to (`foldShardOf`: with
 * several, among all but the first), a client key's in its id's, so the rows a
 * database holds are right only for the layout they were folded under: a
 * Worker bound to another list (a database added, removed or reordered) would
 * fold a key's new events into another database than its old ones, and the
 * reads that add databases up would count it twice.
 *
 * Every fold transaction therefore checks its layout first, inside the
 * transaction (storage/fold-layout.ts `CHECK_LAYOUT_SQL`): the first fold into a fresh database
 * records it, and a fold under another layout fails whole — the batch is
 * retried, then dead-lettered, never folded wrong. A refold
 * (stats-consumer/replay.ts `refold`) is how a pool moves to another layout.
 */
export function foldLayoutOf(index: number, count: number): string {
  return count <= 1 ? `${index + 1}/${count}` : `${index + 1}/${count}${FOLD_LAYOUT_CLIENTS_APART}`;
}

/**
 * What a layout of several databases says since migration 0027: a client key's
 * rows are folded in its own database (stats-consumer/logic/fold-shards.ts), so
 * a pool split before it ("2/13" alone: client rows beside their keys') is
 * refolded once — a batch partly folded before and retried after would fold a
 * client part in a database whose dedupe window has not seen it.
 */
export const FOLD_LAYOUT_CLIENTS_APART = " by key and client key";
