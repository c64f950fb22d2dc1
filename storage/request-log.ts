import { DAY_MS, EVENTS_PREFIX, attemptEventSchema, eventIdTime, foldShardOf, idFilterMayHold, type AttemptEvent, type Settings } from "../schema";
import { namesOf, type FoldDatabases } from "./fold-databases";
import { ARCHIVE_SEARCH, ATTEMPT_COLUMNS, logAttempt, requestOfAttempts, type RequestRow } from "./request-log-rows";
import { searchArchive } from "./archive";
import { readPriceBook } from "./prices";

/**
 * The request log (migrations 0015, 0027): `request_log`, one row per client
 * request with its final attempt, and `request_attempts`, one per attempt before
 * the final one. Written by the consumer
 * in the same transaction as the rollups (a projection of the event log:
 * idempotent, rebuilt by a replay); read by the admin API; pruned by the
 * scheduler after `retention.requestLogDays`.
 */

const at = (column: (typeof ATTEMPT_COLUMNS)[number]) => `value->>${ATTEMPT_COLUMNS.indexOf(column)}`;

/**
 * Inserts the JSON parameter's attempts before the final one (tuples in ATTEMPT_COLUMNS order) into
 * `request_attempts`; one already there (a redelivery) is left as it is. A final attempt is its request's row.
 */
export function insertAttemptsSql(prefix: string): string {
  return `INSERT OR IGNORE INTO ${prefix}request_attempts (${ATTEMPT_COLUMNS.join(", ")})
    SELECT ${ATTEMPT_COLUMNS.map((_, i) => `value->>${i}`).join(", ")} FROM json_each(?1) WHERE ${at("final")} = 0`;
}

/** request_log's columns a final attempt fills as it comes, its figures the row's until an earlier attempt is folded beside it. */
const FINAL_AS_ROW: [string, string][] = [
  ["request_id", at("request_id")],
  ["started_at", at("ts")],
  ["client_key_id", at("client_key_id")],
  ["model", at("model")],
  ["upstream_model", at("upstream_model")],
  ["endpoint", at("endpoint")],
  ["stream", at("stream")],
  ["key_id", at("key_id")],
  ["upstream_id", at("upstream_id")],
  ["status", at("status")],
  ["outcome", at("outcome")],
  ["attempts", "1"],
  ["latency_ms", at("latency_ms")],
  ["ttfb_ms", at("ttfb_ms")],
  ["prompt_tokens", at("prompt_tokens")],
  ["completion_tokens", at("completion_tokens")],
  ["total_tokens", at("total_tokens")],
  ["cached_tokens", at("cached_tokens")],
  ["reasoning_tokens", at("reasoning_tokens")],
  ["usage_source", at("usage_source")],
  ["cost_micros", at("cost_micros")],
  ["unpriced", at("unpriced")],
  ["user_agent", at("user_agent")],
  ["client_ip", at("client_ip")],
  ["attempt", at("attempt")],
  ["error", at("error")],
];

/** Inserts a request's row for each final attempt of the JSON parameter, as if it were the only one; a redelivery is left as it is. */
export function insertRequestsSql(prefix: string): string {
  return `INSERT OR IGNORE INTO ${prefix}request_log (${FINAL_AS_ROW.map(([c]) => c).join(", ")})
    SELECT ${FINAL_AS_ROW.map(([, v]) => v).join(", ")} FROM json_each(?1) WHERE ${at("final")} = 1`;
}

/**
 * The final attempt's own figures in a request's row: `final_*` once an earlier attempt has been folded
 * beside it, the row's own while they are NULL (the final attempt was the only one folded).
 */
const OWN = {
  ts: "COALESCE(r.final_ts, r.started_at)",
  latency: "CASE WHEN r.final_ts IS NULL THEN r.latency_ms ELSE r.final_latency_ms END",
  ttfb: "CASE WHEN r.final_ts IS NULL THEN r.ttfb_ms ELSE r.final_ttfb_ms END",
  cost: "CASE WHEN r.final_ts IS NULL THEN r.cost_micros ELSE r.final_cost_micros END",
  unpriced: "CASE WHEN r.final_ts IS NULL THEN r.unpriced ELSE r.final_unpriced END",
} as const;

/**
 * Recomputes the rows of the JSON parameter's requests that have attempts before the final one, from the
 * final attempt's own figures and all those attempts (so the order and the batches they came in do not
 * matter): the first attempt's start, every attempt's cost. A request without its final attempt yet has no
 * row; the statement that inserts it comes first in the batch, so this one finds it.
 */
export function recomputeRequestsSql(prefix: string): string {
  const started = `MIN(${OWN.ts}, g.started)`;
  return `UPDATE ${prefix}request_log AS r SET
      started_at = ${started},
      attempts = 1 + g.n,
      latency_ms = ${OWN.ts} + ${OWN.latency} - ${started},
      ttfb_ms = CASE WHEN ${OWN.ttfb} IS NULL THEN NULL ELSE ${OWN.ts} + ${OWN.ttfb} - ${started} END,
      cost_micros = ${OWN.cost} + g.cost,
      unpriced = ${OWN.unpriced} + g.unpriced,
      final_ts = ${OWN.ts}, final_latency_ms = ${OWN.latency}, final_ttfb_ms = ${OWN.ttfb}, final_cost_micros = ${OWN.cost}, final_unpriced = ${OWN.unpriced}
    FROM (SELECT request_id, MIN(ts) AS started, COUNT(*) AS n, SUM(cost_micros) AS cost, SUM(unpriced) AS unpriced
          FROM ${prefix}request_attempts WHERE request_id IN (SELECT value->>0 FROM json_each(?1)) GROUP BY request_id) AS g
    WHERE r.request_id = g.request_id`;
}

/** The instant before which the request log is past retention. */
export function requestLogCutoff(settings: Settings, now: number): number {
  return now - settings.retention.requestLogDays * DAY_MS;
}

/** Deletes requests started, and attempts sent, before `cutoff` (for the scheduler's retention batch). */
export function pruneRequestLog(db: D1Database, cutoff: number): D1PreparedStatement[] {
  return [db.prepare("DELETE FROM request_log WHERE started_at < ?1").bind(cutoff), db.prepare("DELETE FROM request_attempts WHERE ts < ?1").bind(cutoff)];
}

// ---------------------------------------------------------------------------
// Reading

/** The filters of a page or an export (see schema/requests.ts). */
export interface RequestFilters {
  from?: number | undefined;
  to?: number | undefined;
  clientKeyId?: string | undefined;
  keyId?: string | undefined;
  upstreamId?: string | undefined;
  model?: string | undefined;
  endpoint?: string | undefined;
  outcome?: string | undefined;
  failed?: "true" | undefined;
  status?: string | undefined;
  stream?: "true" | "false" | undefined;
  minLatencyMs?: number | undefined;
  requestId?: string | undefined;
}

const REQUEST_SELECT = `SELECT r.*, c.name AS client_name, k.masked AS key_masked, u.name AS upstream_name
  FROM request_log r
  LEFT JOIN client_keys c ON c.id = r.client_key_id
  LEFT JOIN keys k ON k.id = r.key_id
  LEFT JOIN upstreams u ON u.id = r.upstream_id`;

/** The WHERE clause for the filters and a cursor (older than `before`, newest first), with its bindings. */
function requestWhere(f: RequestFilters, before: { startedAt: number; requestId: string } | null): { sql: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  /** Adds a condition, numbering its `?`s after those before it. */
  const add = (sql: string, ...values: unknown[]) => {
    let i = 0;
    parts.push(
      sql.replace(/\?/g, () => {
        params.push(values[i++]);
        return `?${params.length}`;
      }),
    );
  };
  if (f.requestId) add("r.request_id = ?", f.requestId);
  if (f.from !== undefined) add("r.started_at >= ?", f.from);
  if (f.to !== undefined) add("r.started_at < ?", f.to);
  if (f.clientKeyId) add("r.client_key_id = ?", f.clientKeyId);
  // Any attempt on the key: the final one's in the row, the earlier ones' through their index (an attempt is never
  // sent before its request started).
  if (f.keyId)
    add(
      "r.request_id IN (SELECT request_id FROM request_log WHERE key_id = ? AND started_at >= ? UNION SELECT request_id FROM request_attempts WHERE key_id = ? AND ts >= ?)",
      f.keyId,
      f.from ?? 0,
      f.keyId,
      f.from ?? 0,
    );
  if (f.upstreamId) add("r.upstream_id = ?", f.upstreamId);
  if (f.model) add("r.model = ?", f.model);
  if (f.endpoint) add("r.endpoint = ?", f.endpoint);
  if (f.outcome) add("r.outcome = ?", f.outcome);
  if (f.failed) add("r.outcome != ?", "ok");
  if (f.status) {
    if (f.status.endsWith("xx")) add("r.status >= ? AND r.status < ?", Number(f.status[0]) * 100, Number(f.status[0]) * 100 + 100);
    else add("r.status = ?", Number(f.status));
  }
  if (f.stream) add("r.stream = ?", f.stream === "true" ? 1 : 0);
  if (f.minLatencyMs !== undefined) add("r.latency_ms >= ?", f.minLatencyMs);
  // Written so the time index bounds the scan (an OR of two ranges would not).
  if (before) add("r.started_at <= ? AND (r.started_at < ? OR r.request_id < ?)", before.startedAt, before.startedAt, before.requestId);
  return { sql: parts.length > 0 ? `WHERE ${parts.join(" AND ")}` : "", params };
}

/** A page of requests matching the filters, newest first, older than the cursor; one more than `limit` tells whether another page follows. */
export async function listRequests(
  dbs: FoldDatabases,
  f: RequestFilters,
  cursor: { startedAt: number; requestId: string } | null,
  limit: number,
): Promise<RequestRow[]> {
  const where = requestWhere(f, cursor);
  const order = `ORDER BY r.started_at DESC, r.request_id DESC LIMIT ${limit + 1}`;
  if (dbs.length === 1) {
    const { results } = await dbs[0]
      .prepare(`${REQUEST_SELECT} ${where.sql} ${order}`)
      .bind(...where.params)
      .all<RequestRow>();
    return results;
  }
  // Several databases: each one's newest page (a request is in one of them), the newest of those, named from the configuration.
  const parts = await Promise.all(
    dbs.map(
      async (db) =>
        (
          await db
            .prepare(`SELECT r.* FROM request_log r ${where.sql} ${order}`)
            .bind(...where.params)
            .all<RequestRow>()
        ).results,
    ),
  );
  const newest = parts
    .flat()
    .sort((a, b) => Number(b.started_at) - Number(a.started_at) || (String(a.request_id) < String(b.request_id) ? 1 : -1))
    .slice(0, limit + 1);
  return named(dbs[0], newest, true);
}

/**
 * A request's attempts as rows of `request_attempts`, in order: those before the final one as kept, the final one
 * from its request's row with its own figures. `?1` binds the request id.
 */
const ATTEMPTS_OF_REQUEST = `SELECT ${ATTEMPT_COLUMNS.join(", ")} FROM request_attempts WHERE request_id = ?1
  UNION ALL
  SELECT request_id, attempt, ${OWN.ts}, 1, key_id, upstream_id, client_key_id, model, upstream_model, endpoint, stream, status, outcome,
    ${OWN.latency}, ${OWN.ttfb}, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source,
    ${OWN.cost}, ${OWN.unpriced}, error, user_agent, client_ip
  FROM request_log r WHERE r.request_id = ?1`;

/** One request and its attempts in order (null when the log does not hold it): in the database its id names. */
export async function findRequest(dbs: FoldDatabases, requestId: string): Promise<{ request: RequestRow; attempts: RequestRow[] } | null> {
  const one = dbs.length === 1;
  const db = dbs[foldShardOf(requestId, dbs.length)]!;
  const [request, attempts] = await db.batch<RequestRow>([
    db.prepare(`${one ? REQUEST_SELECT : "SELECT r.* FROM request_log r"} WHERE r.request_id = ?1`).bind(requestId),
    db
      .prepare(
        one
          ? `SELECT a.*, k.masked AS key_masked, u.name AS upstream_name FROM (${ATTEMPTS_OF_REQUEST}) a
             LEFT JOIN keys k ON k.id = a.key_id LEFT JOIN upstreams u ON u.id = a.upstream_id
             ORDER BY a.attempt`
          : `SELECT a.* FROM (${ATTEMPTS_OF_REQUEST}) a ORDER BY a.attempt`,
      )
      .bind(requestId),
  ]);
  const row = request?.results[0];
  if (!row) return null;
  if (one) return { request: row, attempts: attempts?.results ?? [] };
  const [named1] = await named(dbs[0], [row], true);
  return { request: named1!, attempts: await named(dbs[0], attempts?.results ?? [], false) };
}

/**
 * Rows of one of several fold databases with the names the single database's reads join: the key's masked form and
 * the upstream's name, and for requests the client key's (null: deleted).
 */
async function named(config: D1Database, rows: RequestRow[], client: boolean): Promise<RequestRow[]> {
  const ids = (column: string) => rows.map((r) => r[column]).filter((v): v is string => typeof v === "string");
  const [keys, upstreams, clients] = await Promise.all([
    namesOf(config, "keys", "masked", ids("key_id")),
    namesOf(config, "upstreams", "name", ids("upstream_id")),
    client ? namesOf(config, "client_keys", "name", ids("client_key_id")) : new Map<string, string>(),
  ]);
  return rows.map((r) => ({
    ...r,
    ...(client ? { client_name: clients.get(String(r.client_key_id)) ?? null } : {}),
    key_masked: keys.get(String(r.key_id)) ?? null,
    upstream_name: upstreams.get(String(r.upstream_id)) ?? null,
  }));
}

// ---------------------------------------------------------------------------
// Reading a request from the event archive

/** What a search of the archive for a request found, and what it read. */
export interface ArchivedRequest {
  found: { request: RequestRow; attempts: RequestRow[] } | null;
  /** The span of consumption times searched; the batches listed in it and read (those whose filter may hold the request). */
  from: number;
  until: number;
  listed: number;
  read: number;
  /** When the last batch listed was folded (null: none was). */
  lastAt: number | null;
  /** Whether the search stopped at `ARCHIVE_SEARCH`'s reads or lists before the end of its span. */
  budgetSpent: boolean;
}

/**
 * Looks a request up in the event archive by the time its id carries (a UUIDv7,
 * as the gateway makes them; null for any other id): its attempt events, priced
 * as the consumer prices them (the price in force when each was sent), made into
 * the rows the log would hold, with the names the log's reads join.
 */
export async function findArchivedRequest(db: D1Database, bucket: R2Bucket, requestId: string, now: number): Promise<ArchivedRequest | null> {
  const made = eventIdTime(requestId);
  if (made === null) return null;
  const from = made - ARCHIVE_SEARCH.beforeMs;
  const until = Math.min(now, made + ARCHIVE_SEARCH.afterMs);
  const events = new Map<number, AttemptEvent>();
  /** All of the request's attempts are found once the final one is and every position before it. */
  const complete = () => {
    const last = [...events.values()].find((e) => e.final);
    return last !== undefined && events.size >= last.attempt;
  };
  const search = await searchArchive(bucket, {
    prefix: EVENTS_PREFIX,
    from,
    until,
    // The archive holds events as JSON.stringify wrote them.
    needle: `"requestId":${JSON.stringify(requestId)}`,
    match: (record) => {
      const e = attemptEventSchema.safeParse(record);
      if (!e.success || e.data.requestId !== requestId) return false;
      // A redelivered batch is archived again: each attempt once.
      if (!events.has(e.data.attempt)) events.set(e.data.attempt, e.data);
      return true;
    },
    // Batches archived before they carried a filter are read.
    mayHold: (metadata) => metadata?.requestIds === undefined || idFilterMayHold(metadata.requestIds, requestId),
    done: complete,
    maxObjects: ARCHIVE_SEARCH.maxObjects,
    maxLists: ARCHIVE_SEARCH.maxLists,
  });
  const result: ArchivedRequest = {
    found: null,
    from,
    until,
    listed: search.listed,
    read: search.read,
    lastAt: search.lastAt,
    budgetSpent: search.budgetSpent,
  };
  if (!complete()) return result;
  const prices = await readPriceBook(db);
  const found = requestOfAttempts([...events.values()].map((e) => logAttempt(e, ...prices.attemptCost(e))));
  if (!found) return result;
  const ids = (column: string) => JSON.stringify([...new Set(found.attempts.map((a) => a[column]))]);
  const { results: names } = await db
    .prepare(
      `SELECT 'key' AS kind, id, masked AS name FROM keys WHERE id IN (SELECT value FROM json_each(?1))
       UNION ALL SELECT 'upstream', id, name FROM upstreams WHERE id IN (SELECT value FROM json_each(?2))
       UNION ALL SELECT 'client', id, name FROM client_keys WHERE id = ?3`,
    )
    .bind(ids("key_id"), ids("upstream_id"), found.request.client_key_id)
    .all<{ kind: string; id: string; name: string }>();
  const name = (kind: string, id: unknown) => names.find((n) => n.kind === kind && n.id === id)?.name ?? null;
  for (const row of [found.request, ...found.attempts]) {
    row.key_masked = name("key", row.key_id);
    row.upstream_name = name("upstream", row.upstream_id);
  }
  found.request.client_name = name("client", found.request.client_key_id);
  result.found = found;
  return result;
}
