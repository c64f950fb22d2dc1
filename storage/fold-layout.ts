import type { FoldDatabases } from "./fold-databases";

/**
 * The fold's layout, kept in each fold database (migration 0026, `fold_layout`):
 * which of how many databases it is, "1/1" for a deployment with `DB` alone.
 * A key's rows live in the database its id hashes to (`foldShardOf`: with
 * several, among all but the first), so the rows a database holds are right
 * only for the layout they were folded under: a
 * Worker bound to another list (a database added, removed or reordered) would
 * fold a key's new events into another database than its old ones, and the
 * reads that add databases up would count it twice.
 *
 * Every fold transaction therefore checks its layout first, inside the
 * transaction (`CHECK_LAYOUT_SQL`): the first fold into a fresh database
 * records it, and a fold under another layout fails whole — the batch is
 * retried, then dead-lettered, never folded wrong. A refold
 * (stats-consumer/replay.ts `refold`) is how a pool moves to another layout.
 */
export function foldLayoutOf(index: number, count: number): string {
  return `${index + 1}/${count}`;
}

/** The layout a refold folds under while it runs: batches folding under a database's own layout fail until it ends. */
export function refoldLayout(jobId: string): string {
  return `refold ${jobId}`;
}

/**
 * A fold transaction's first statement (?1: its layout): records the layout in
 * a database that has none, and fails on the constraint `fold_layout_unchanged`
 * when the database holds another.
 */
export const CHECK_LAYOUT_SQL = "INSERT INTO fold_layout (id, layout, checked) VALUES (1, ?1, ?1) ON CONFLICT (id) DO UPDATE SET checked = excluded.checked";

/** Sets a database's layout (?1), whatever it held. */
export const SET_LAYOUT_SQL =
  "INSERT INTO fold_layout (id, layout, checked) VALUES (1, ?1, NULL) ON CONFLICT (id) DO UPDATE SET layout = excluded.layout, checked = NULL";

/** Gives a database `layout` (a refold's end). */
export async function setFoldLayout(db: D1Database, layout: string): Promise<void> {
  await db.prepare(SET_LAYOUT_SQL).bind(layout).run();
}

/** Whether a fold failed because a database holds another layout than the fold's. */
export function isLayoutRefusal(err: unknown): boolean {
  return err instanceof Error && /fold_layout_unchanged/.test(err.message);
}

/**
 * A fold refused because a database holds another layout than the fold's:
 * the list of databases changed, or a refold is under way.
 */
export class FoldLayoutRefused extends Error {
  override name = "FoldLayoutRefused";
}

/**
 * How long a batch refused for its layout waits before it is tried again: the
 * queue's ten retries then span 20 minutes, longer than one consumer
 * invocation — a refold — may run (15 minutes of wall time).
 */
export const LAYOUT_RETRY_DELAY_S = 120;

/** Each database's layout: what it holds (null: nothing folded yet), and what this Worker's bindings make it. */
export interface DatabaseLayout {
  database: number;
  holds: string | null;
  bound: string;
}

/** Each fold database's layout beside the one this Worker's bindings give it. */
export async function readFoldLayouts(dbs: FoldDatabases): Promise<DatabaseLayout[]> {
  return Promise.all(
    dbs.map(async (db, i) => {
      const row = await db.prepare("SELECT layout FROM fold_layout WHERE id = 1").first<{ layout: string }>();
      return { database: i + 1, holds: row?.layout ?? null, bound: foldLayoutOf(i, dbs.length) };
    }),
  );
}

/** Whether every database holds the layout its binding gives it (or none yet). */
export function layoutsAgree(layouts: readonly DatabaseLayout[]): boolean {
  return layouts.every((l) => l.holds === null || l.holds === l.bound);
}

/** What a fold refused for its layout says: which databases hold which layout, and what to do. */
export function layoutRefusalMessage(layouts: readonly DatabaseLayout[]): string {
  const differ = layouts.filter((l) => l.holds !== null && l.holds !== l.bound);
  const refolding = differ.find((l) => l.holds!.startsWith("refold "));
  if (refolding) return `the fold databases are being refolded (${refolding.holds}); batches wait until it ends`;
  const held = differ.map((l) => `database ${l.database} was folded as ${l.holds}, it is bound as ${l.bound}`).join("; ");
  return `the fold databases changed (${held}): their rows were folded under another list of databases. Bind the list they were folded under, or refold the event archive into the new one (docs/operations.md, "Folding into several databases")`;
}
