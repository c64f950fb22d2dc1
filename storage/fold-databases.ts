/**
 * The D1 databases the consumer's fold writes (stats-consumer/logic/fold-shards.ts),
 * in order. The first is `DB`, which also holds the pool's configuration — keys,
 * upstreams, client keys, settings — that reads take names and key lists from,
 * and the audit log; each further one holds the fold's tables for its share of
 * the keys.
 */
export type FoldDatabases = readonly [D1Database, ...D1Database[]];

/** Whether a binding's name is a further fold database's: `DB_2`, `DB_3`… */
export function isFoldDatabaseBinding(name: string): boolean {
  return /^DB_\d+$/.test(name);
}

const databasesOf = new WeakMap<object, FoldDatabases>();

/**
 * A deployment's fold databases: `DB`, then `DB_2`, `DB_3`… in order of their
 * number, as both Workers' configs bind them (docs/operations.md, "Folding into
 * several databases"). A key's rows live in the database its id hashes to —
 * with several, among all but the first (`foldShardOf`) — so the list is the
 * fold's layout: its length and order may not change while the databases hold
 * folded rows (storage/fold-layout.ts).
 */
export function foldDatabases(env: { DB: D1Database }): FoldDatabases {
  let dbs = databasesOf.get(env);
  if (!dbs) {
    const others: [number, D1Database][] = [];
    for (const [name, value] of Object.entries(env))
      if (isFoldDatabaseBinding(name) && value) others.push([Number(name.slice("DB_".length)), value as D1Database]);
    dbs = [env.DB, ...others.sort((a, b) => a[0] - b[0]).map(([, db]) => db)];
    databasesOf.set(env, dbs);
  }
  return dbs;
}

/** A JSON list of every key of an upstream, from the configuration, for reads of databases that do not hold `keys`. */
export async function upstreamKeyIds(config: D1Database, upstreamId: string): Promise<string> {
  const row = await config.prepare("SELECT json_group_array(id) AS ids FROM keys WHERE upstream_id = ?1").bind(upstreamId).first<{ ids: string }>();
  return row?.ids ?? "[]";
}

/** A column of the configuration's rows with these ids (those that exist), by id (`table`'s `id`). */
export async function namesOf<T = string>(
  config: D1Database,
  table: "keys" | "upstreams" | "client_keys",
  column: string,
  ids: Iterable<string>,
): Promise<Map<string, T>> {
  const list = [...new Set(ids)];
  if (list.length === 0) return new Map();
  const { results } = await config
    .prepare(`SELECT id, ${column} AS value FROM ${table} WHERE id IN (SELECT value FROM json_each(?1))`)
    .bind(JSON.stringify(list))
    .all<{ id: string; value: T }>();
  return new Map(results.map((r) => [r.id, r.value]));
}
