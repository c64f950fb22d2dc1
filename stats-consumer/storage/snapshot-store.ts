import {
  SNAPSHOT_KV_KEY,
  SNAPSHOT_PART_PREFIX,
  SNAPSHOT_VERSION_KV_KEY,
  snapshotHeadSchema,
  type HealthFacts,
  type SnapshotHead,
  type SnapshotKeyConfig,
} from "../../schema";
import { selectAllClientKeys, type ClientKeyRow } from "../../storage/client-keys";
import {
  keyFactsAcross,
  keyFactsFromRows,
  keyStatesOfTroubledAcross,
  keysForSnapshotAcross,
  selectKeyFacts,
  selectKeyStates,
  selectKeysForSnapshot,
  type KeySnapshotRow,
  type KeyStateRow,
} from "../../storage/keys";
import type { FoldDatabases } from "../../storage/fold-databases";
import { SUCCESS_RATE_WINDOW_MS } from "../../storage/rollups";
import { priceBookOf, selectPriceHistory, selectSpendSince } from "../../storage/prices";
import { selectSettings } from "../../storage/settings";
import { PARTS_VERSION_SQL, claimPublishedVersion, recordPublishedGeneratedAt, selectPublishedVersion, takeSnapshotVersion } from "../../storage/snapshot-meta";
import { selectAllUpstreams, type UpstreamRow } from "../../storage/upstreams";
import type { PoolRows } from "../logic/build-snapshot";

/** How long a key part no head names any more stays in KV: isolates still reading an older head may need it. */
const RETIRED_PART_TTL_MS = 3_600_000;

/** The statements that read the configuration a head carries besides keys. */
function configStatements(db: D1Database): D1PreparedStatement[] {
  return [selectAllUpstreams(db), selectAllClientKeys(db), selectSettings(db), selectPriceHistory(db), selectSpendSince(db)];
}

function configRows(results: D1Result<Record<string, unknown>>[]): Omit<PoolRows, "keys"> {
  const [upstreams, clientKeys, settings, prices, since] = results;
  return {
    upstreams: upstreams!.results as unknown as UpstreamRow[],
    clientKeys: clientKeys!.results as unknown as ClientKeyRow[],
    settings: (settings!.results[0]?.value as string | undefined) ?? null,
    prices: priceBookOf(prices!.results, since!.results),
  };
}

/**
 * Reads the whole pool — configuration, every key with its health facts and
 * recent success counts — and takes the next snapshot version, in one
 * transaction, for a publish that rewrites the key parts.
 */
export async function readPoolRows(dbs: FoldDatabases, now: number): Promise<{ rows: PoolRows; version: number }> {
  const db = dbs[0];
  const since = now - SUCCESS_RATE_WINDOW_MS;
  const [version, keys, ...config] = await db.batch<Record<string, unknown>>([
    takeSnapshotVersion(db),
    selectKeysForSnapshot(db, since),
    ...configStatements(db),
  ]);
  const rows = keys!.results as unknown as KeySnapshotRow[];
  // Over several fold databases, each key's state is read from its own (after the version: a later publish has it).
  const withStates = dbs.length === 1 ? rows : await keysForSnapshotAcross(dbs, rows, since);
  return { rows: { keys: withStates, ...configRows(config) }, version: Number(version!.results[0]!.value) };
}

/**
 * For a publish of key states only, in one transaction: the next snapshot
 * version, the key parts the newest list names and the version that recorded
 * it, the configuration besides keys, and the keys whose state may not be the
 * default.
 */
export async function readStateRows(
  dbs: FoldDatabases,
  now: number,
): Promise<{
  rows: Omit<PoolRows, "keys">;
  states: KeyStateRow[];
  keyParts: { names: string[]; keyCount: number; version: number };
  version: number;
}> {
  const db = dbs[0];
  const one = dbs.length === 1;
  const since = now - SUCCESS_RATE_WINDOW_MS;
  const [version, parts, partsVersion, ...rest] = await db.batch<Record<string, unknown>>([
    takeSnapshotVersion(db),
    db.prepare("SELECT name, keys FROM snapshot_parts WHERE retired_at IS NULL ORDER BY ord"),
    db.prepare(PARTS_VERSION_SQL),
    ...(one ? [selectKeyStates(db, now, since)] : []),
    ...configStatements(db),
  ]);
  const config = one ? rest.slice(1) : rest;
  // Over several fold databases, each database's keys in trouble are read from it (after the version).
  const states = one ? (rest[0]!.results as unknown as KeyStateRow[]) : await keyStatesOfTroubledAcross(dbs, now, since);
  return {
    rows: configRows(config),
    states,
    keyParts: {
      names: parts!.results.map((p) => String(p.name)),
      keyCount: parts!.results.reduce((n, p) => n + Number(p.keys), 0),
      version: Number(partsVersion!.results[0]?.value ?? 0),
    },
    version: Number(version!.results[0]!.value),
  };
}

/** A part's KV key: the prefix and the SHA-256 of its text (so equal content is one value, written once). */
async function partName(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return SNAPSHOT_PART_PREFIX + [...digest.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Writes the key parts the newest head does not name already (a part that is
 * there under its name holds the same keys), and returns every part's name.
 */
export async function writeKeyParts(db: D1Database, kv: KVNamespace, parts: SnapshotKeyConfig[][]): Promise<string[]> {
  const texts = parts.map((p) => JSON.stringify(p));
  const names = await Promise.all(texts.map(partName));
  const { results } = await db.prepare("SELECT name FROM snapshot_parts WHERE retired_at IS NULL").all<{ name: string }>();
  const current = new Set(results.map((r) => r.name));
  const writes = names.map((name, i) => ({ name, text: texts[i]! })).filter((p) => !current.has(p.name));
  for (let i = 0; i < writes.length; i += 6) await Promise.all(writes.slice(i, i + 6).map((p) => kv.put(p.name, p.text)));
  return names;
}

/**
 * Records `names` (holding `counts` keys each) as the parts the heads from
 * `version` on name, retiring the others — unless a publish with a newer
 * version recorded its list already (then false: that one is newer). One
 * transaction: the check and the writes cannot interleave with another's.
 */
export async function recordKeyParts(db: D1Database, names: string[], counts: number[], version: number, now: number): Promise<boolean> {
  const list = JSON.stringify(names.map((name, i) => [name, i, counts[i]]));
  const older = (param: string) => `(${PARTS_VERSION_SQL}) < ${param}`;
  const [, , recorded] = await db.batch([
    db
      .prepare(`UPDATE snapshot_parts SET retired_at = ?2 WHERE retired_at IS NULL AND name NOT IN (SELECT value->>0 FROM json_each(?1)) AND ${older("?3")}`)
      .bind(list, now, version),
    db
      .prepare(
        `INSERT INTO snapshot_parts (name, ord, keys, retired_at) SELECT value->>0, value->>1, value->>2, NULL FROM json_each(?1) WHERE ${older("?2")}
         ON CONFLICT (name) DO UPDATE SET ord = excluded.ord, keys = excluded.keys, retired_at = NULL`,
      )
      .bind(list, version),
    db.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_parts_version' AND value < ?1").bind(version),
  ]);
  return (recorded!.meta.changes ?? 0) === 1;
}

/** The version whose publish recorded the newest key part list (0: none yet). */
export async function readPartsVersion(db: D1Database): Promise<number> {
  return (await db.prepare(PARTS_VERSION_SQL).first<number>("value")) ?? 0;
}

/**
 * Deletes from KV the key parts retired more than an hour before `now` (no
 * head an isolate may still hold names them), and forgets them.
 */
export async function deleteRetiredParts(db: D1Database, kv: KVNamespace, now: number): Promise<number> {
  const { results } = await db
    .prepare("DELETE FROM snapshot_parts WHERE retired_at IS NOT NULL AND retired_at < ?1 RETURNING name")
    .bind(now - RETIRED_PART_TTL_MS)
    .all<{ name: string }>();
  for (let i = 0; i < results.length; i += 6) await Promise.all(results.slice(i, i + 6).map((r) => kv.delete(r.name)));
  return results.length;
}

/**
 * Writes the head to KV unless a newer version has been written already, or
 * (given `partsVersion`, for a publish of states) the key part list it names
 * is no longer the newest (checked and recorded in D1, which serialises
 * concurrent consumers); the
 * version and generation time ride in the KV metadata, and the version alone in
 * a small key of its own, so readers can skip an unchanged head without
 * downloading it. The generation time is recorded once the write succeeded,
 * so a failed write leaves the snapshot looking stale to the scheduler.
 */
export async function publishHead(db: D1Database, kv: KVNamespace, head: SnapshotHead, partsVersion: number | null = null): Promise<boolean> {
  if (!(await claimPublishedVersion(db, head.version, partsVersion))) return false;
  const metadata = { version: head.version, generatedAt: head.generatedAt };
  await kv.put(SNAPSHOT_KV_KEY, JSON.stringify(head), { metadata });
  // After the head: a reader that sees the new version finds the head written.
  await kv.put(SNAPSHOT_VERSION_KV_KEY, String(head.version), { metadata });
  await recordPublishedGeneratedAt(db, head.generatedAt);
  return true;
}

/**
 * Health facts and admin state of the given keys (none read when there are
 * none), for deciding whether their state changed, and the version last
 * published, in one round trip.
 */
export async function readKeyFacts(
  dbs: FoldDatabases,
  keyIds: string[],
): Promise<{ facts: Map<string, { enabled: boolean; facts: HealthFacts }>; publishedVersion: number }> {
  const db = dbs[0];
  if (dbs.length > 1) {
    const [version, rows] = await Promise.all([selectPublishedVersion(db).first<{ value: number }>(), keyIds.length > 0 ? keyFactsAcross(dbs, keyIds) : []]);
    return { facts: keyFactsFromRows(rows), publishedVersion: Number(version?.value ?? 0) };
  }
  const [version, rows] = await db.batch<Record<string, unknown>>(
    keyIds.length > 0 ? [selectPublishedVersion(db), selectKeyFacts(db, keyIds)] : [selectPublishedVersion(db)],
  );
  return { facts: keyFactsFromRows(rows?.results ?? []), publishedVersion: Number(version!.results[0]?.value ?? 0) };
}

/** The published head, or null when there is none (or it is not valid). */
export async function readPublishedHead(kv: KVNamespace): Promise<SnapshotHead | null> {
  const raw = await kv.get(SNAPSHOT_KV_KEY, "json");
  const parsed = snapshotHeadSchema.safeParse(raw);
  return parsed.success ? parsed.data : null;
}
