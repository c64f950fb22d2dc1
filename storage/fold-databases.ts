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
