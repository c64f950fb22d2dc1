/**
 * The D1 databases the consumer's fold writes (stats-consumer/logic/fold-shards.ts),
 * in order. The first is `DB`, which also holds the pool's configuration — keys,
 * upstreams, client keys, settings — that reads take names and key lists from;
 * each further one holds the fold's tables for its share of the keys.
 */
export type FoldDatabases = readonly [D1Database, ...D1Database[]];

/**
 * A deployment's fold databases: `DB` alone until every reader of the fold's
 * tables reads across several (docs/scale.md, item 29, says which do so far).
 */
export function foldDatabases(env: { DB: D1Database }): FoldDatabases {
  return [env.DB];
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
