import { BACKUP_TABLES, type BackupTable } from "../schema";

/**
 * The configuration tables as rows, for a backup, and written back, for a
 * restore. Rows travel as column → value; a restore writes the columns the
 * database has (an archive from an older schema leaves newer columns at their
 * defaults) in one atomic batch.
 */

export type Row = Record<string, string | number | null>;

/** Rows per INSERT: each statement binds one JSON array of them. */
const CHUNK = 500;

/** Every row of every configuration table. */
export async function readConfiguration(db: D1Database): Promise<Record<BackupTable, Row[]>> {
  const results = await db.batch(BACKUP_TABLES.map((t) => db.prepare(`SELECT * FROM ${t} ORDER BY rowid`)));
  return Object.fromEntries(BACKUP_TABLES.map((t, i) => [t, (results[i]!.results ?? []) as Row[]])) as Record<BackupTable, Row[]>;
}

/** What a deployment already holds that a restore would collide with: upstreams, keys, client keys. */
export async function configurationCounts(db: D1Database): Promise<{ upstreams: number; keys: number; clientKeys: number }> {
  const row = await db
    .prepare("SELECT (SELECT count(*) FROM upstreams) AS upstreams, (SELECT count(*) FROM keys) AS keys, (SELECT count(*) FROM client_keys) AS clientKeys")
    .first<{ upstreams: number; keys: number; clientKeys: number }>();
  return row ?? { upstreams: 0, keys: 0, clientKeys: 0 };
}

/** The columns each configuration table has in this database. */
async function tableColumns(db: D1Database): Promise<Map<BackupTable, Set<string>>> {
  const results = await db.batch(BACKUP_TABLES.map((t) => db.prepare(`SELECT name FROM pragma_table_info('${t}')`)));
  return new Map(BACKUP_TABLES.map((t, i) => [t, new Set(((results[i]!.results ?? []) as { name: string }[]).map((r) => r.name))]));
}

/**
 * Writes the rows into their tables, all or nothing. Singleton tables (settings,
 * the scrape token) are replaced; the others must be empty for their rows (the
 * caller checks). Columns the database does not have are refused by name, so a
 * restore never drops data silently.
 */
export async function writeConfiguration(db: D1Database, tables: Partial<Record<BackupTable, Row[]>>): Promise<Record<string, number>> {
  const columns = await tableColumns(db);
  const statements: D1PreparedStatement[] = [];
  const counts: Record<string, number> = {};
  for (const table of BACKUP_TABLES) {
    const rows = tables[table] ?? [];
    counts[table] = rows.length;
    if (rows.length === 0) continue;
    const known = columns.get(table)!;
    const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const unknown = names.filter((n) => !known.has(n));
    if (unknown.length > 0) throw new UnknownColumnsError(table, unknown);
    const verb = table === "settings" || table === "metrics_access" ? "INSERT OR REPLACE" : "INSERT";
    const select = names.map((n) => `value->>'${n}'`).join(", ");
    for (let i = 0; i < rows.length; i += CHUNK) {
      const chunk = rows.slice(i, i + CHUNK).map((r) => Object.fromEntries(names.map((n) => [n, r[n] ?? null])));
      statements.push(db.prepare(`${verb} INTO ${table} (${names.join(", ")}) SELECT ${select} FROM json_each(?1)`).bind(JSON.stringify(chunk)));
    }
  }
  if (statements.length > 0) await db.batch(statements);
  return counts;
}

/** An archive's rows name columns this database does not have: it came from a newer schema. */
export class UnknownColumnsError extends Error {
  constructor(
    readonly table: string,
    readonly columns: string[],
  ) {
    super(`the archive's ${table} rows have columns this database does not: ${columns.join(", ")}`);
  }
}
