import { PriceBook, type Price, type PriceRow } from "../schema";

/**
 * The `prices` table (migration 0014): every price with its history. Written by
 * the admin API (a change adds a row in force from its moment, never edits
 * one); read by the consumer, which prices each attempt by the row in force at
 * its time, and by the admin API.
 */

function toRow(r: Record<string, unknown>): PriceRow {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    model: String(r.model),
    upstreamId: String(r.upstream_id),
    input: n(r.input),
    cachedInput: n(r.cached_input),
    output: n(r.output),
    perRequest: n(r.per_request),
    source: String(r.source),
    effectiveFrom: Number(r.effective_from),
    removed: r.removed === 1,
  };
}

/** The statement that reads the whole history (for a batch); its rows go to `priceBookOf`. */
export function selectPriceHistory(db: D1Database): D1PreparedStatement {
  return db.prepare(
    "SELECT model, upstream_id, input, cached_input, output, per_request, source, effective_from, removed FROM prices ORDER BY effective_from, created_at",
  );
}

/** The statement that reads when attempts began to be priced (migration 0014); its row goes to `priceBookOf`. */
export function selectSpendSince(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT value FROM meta WHERE name = 'spend_counted_since'");
}

/** The price book a `selectPriceHistory` result and a `selectSpendSince` one hold. */
export function priceBookOf(rows: Record<string, unknown>[], since: Record<string, unknown>[]): PriceBook {
  return new PriceBook(rows.map(toRow), Number(since[0]?.value ?? 0));
}

/** Every price with its history, as a book. */
export async function readPriceBook(db: D1Database): Promise<PriceBook> {
  const [history, since] = await db.batch<Record<string, unknown>>([selectPriceHistory(db), selectSpendSince(db)]);
  return priceBookOf(history!.results, since!.results);
}

/** Adds a row to the history: `price` in force from its `effectiveFrom`, or (removed) the end of the price there. */
export function insertPriceRow(db: D1Database, id: string, price: Price, removed: boolean, now: number): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO prices (id, model, upstream_id, input, cached_input, output, per_request, source, effective_from, removed, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)`,
    )
    .bind(
      id,
      price.model,
      price.upstreamId,
      price.input,
      price.cachedInput,
      price.output,
      price.perRequest,
      price.source,
      price.effectiveFrom,
      removed ? 1 : 0,
      now,
    );
}
