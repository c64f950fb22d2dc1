import { deriveKeyState, headOf, splitKeys, type KeypoolEvent, type KeyState, type Outcome, type Settings, type Snapshot, type SnapshotHead } from "../schema";
import { keyLabelsAcross, selectKeyLabels } from "../storage/keys";
import type { FoldDatabases } from "../storage/fold-databases";
import { SnapshotReader } from "../storage/snapshot-reader";
import { buildSnapshot, buildStateHead } from "./logic/build-snapshot";
import { changesSnapshot } from "./logic/rollup-rows";
import type { KeyExtras } from "./logic/alert-conditions";
import { claimPublish, readPublishClaims } from "../storage/snapshot-meta";
import {
  deleteRetiredParts,
  publishHead,
  readPartsVersion,
  readKeyFacts,
  readPoolRows,
  readPublishedHead,
  readStateRows,
  recordKeyParts,
  writeKeyParts,
} from "./storage/snapshot-store";

/** KV allows one write per second to a key. */
const PUBLISH_INTERVAL_MS = 1_000;
/** How long a batch keeps trying to get its change published before leaving it to the next publish. */
const PUBLISH_PATIENCE_MS = 10_000;

/**
 * What this isolate knows of the published snapshot: the key states of the last
 * head it saw (published by itself, or read from KV), so deciding whether a
 * batch changed them rarely reads KV; and the key parts it holds, so a publish
 * of states can hand the alerts the whole pool without reading it again. One per
 * isolate; a fresh one knows nothing and reads KV the first time.
 */
export class PublishedStates {
  private last: { version: number; states: Map<string, KeyState> } | null = null;
  readonly parts = new SnapshotReader();

  /** The key states of snapshot `version` (keys absent are active), from memory if this isolate published or read it, else from KV. */
  async of(kv: KVNamespace, version: number): Promise<Map<string, KeyState>> {
    if (!this.last || version > this.last.version) {
      const head = await readPublishedHead(kv);
      this.last = { version: head?.version ?? 0, states: statesOf(head) };
    }
    return this.last.states;
  }

  /** Remembers the head this isolate just published. */
  remember(head: SnapshotHead): void {
    this.last = { version: head.version, states: statesOf(head) };
  }
}

function statesOf(head: SnapshotHead | null): Map<string, KeyState> {
  return new Map(Object.entries(head?.states ?? {}).map(([id, entry]) => [id, entry[0]]));
}

export interface PublishDeps {
  db: D1Database;
  /** The fold's databases, `db` first, for keys' state (`db` alone when absent). */
  foldDbs?: FoldDatabases;
  kv: KVNamespace;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  published: PublishedStates;
  /** Called with each snapshot this consumer published and what the alerts know of its keys besides (masked form, balance). */
  onPublished?: (snapshot: Snapshot, extras: Map<string, KeyExtras>) => Promise<void>;
}

/**
 * Admin actions that leave every key's configuration as it was: a publish
 * after them rewrites the head (upstreams, client keys, settings, prices and
 * states are read afresh) and not the key parts. Any other action — on keys,
 * deleting an upstream, a restore, or one added later — rereads every key.
 */
const KEEPS_KEYS: ReadonlySet<string> = new Set([
  "snapshot.refresh",
  "settings.update",
  "upstream.create",
  "upstream.update",
  "client_key.create",
  "client_key.update",
  "client_key.delete",
  "price.set",
  "price.remove",
  "price.add_published",
  "alert_destination.create",
  "alert_destination.update",
  "alert_destination.delete",
  "backup.create",
]);

/** Whether these events may have changed a key's configuration (so the key parts are rebuilt). */
export function changesKeys(events: KeypoolEvent[]): boolean {
  return events.some((e) => e.type === "admin" && !KEEPS_KEYS.has(e.action));
}

/** Outcomes that can move a key out of "active" (see `deriveKeyState`); the rest only move keys towards it, or say nothing about them. */
const MAY_DEGRADE: ReadonlySet<Outcome> = new Set(["rate_limited", "auth_failed", "no_balance", "upstream_error", "network_error"]);

/**
 * Whether folding these events changed anything the published snapshot shows.
 * Only keys that may have changed have their facts read: keys with an attempt
 * that can degrade them, and keys the snapshot shows as not active that an
 * attempt may have revived. A key shown as active whose attempts all succeeded
 * (or failed on the client's side) stays active — in a large pool that is
 * nearly every key of nearly every batch, a thousand rows not read.
 */
async function snapshotIsStale(events: KeypoolEvent[], settings: Settings, deps: PublishDeps): Promise<boolean> {
  if (changesSnapshot(events)) return true;
  const touched = new Set<string>();
  const degraded = new Set<string>();
  for (const e of events) {
    if (e.type !== "attempt") continue;
    touched.add(e.keyId);
    if (MAY_DEGRADE.has(e.outcome)) degraded.add(e.keyId);
  }
  if (touched.size === 0) return false;
  const dbs = deps.foldDbs ?? [deps.db];
  const first = await readKeyFacts(dbs, [...degraded]);
  const states = await deps.published.of(deps.kv, first.publishedVersion);
  const revivable = [...touched].filter((id) => !degraded.has(id) && (states.get(id) ?? "active") !== "active");
  const facts = revivable.length === 0 ? first.facts : new Map([...first.facts, ...(await readKeyFacts(dbs, revivable)).facts]);
  const now = deps.now();
  return [...degraded, ...revivable].some((id) => {
    const key = facts.get(id);
    if (!key) return false; // deleted since
    const state = key.enabled ? deriveKeyState(key.facts, settings, now).state : "disabled";
    return state !== (states.get(id) ?? "active");
  });
}

/** Masked form and balance of the keys the pool's alerts may name (keys in trouble, balances under a threshold). */
async function alertExtras(dbs: FoldDatabases, head: SnapshotHead): Promise<Map<string, KeyExtras>> {
  const { rules, lowBalanceByUpstream } = head.settings.alerts;
  const troubled = Object.entries(head.states)
    .filter(([, entry]) => entry[0] === "dead" || entry[0] === "exhausted" || entry[0] === "failing")
    .map(([id]) => id);
  const below = rules.low_balance.enabled ? Math.max(rules.low_balance.threshold, ...Object.values(lowBalanceByUpstream)) : null;
  const db = dbs[0];
  const results =
    dbs.length === 1
      ? (await db.batch<{ id: string; masked: string; balance: number | null }>(selectKeyLabels(db, troubled, below))).flatMap((r) => r.results)
      : await keyLabelsAcross(dbs, troubled, below);
  return new Map(results.map((r) => [r.id, { masked: r.masked, balance: r.balance }]));
}

/** What a publish came to: a version written, one superseded by a newer publish, or one to make again. */
type Published = { version: number } | "superseded" | "again";

/**
 * A publish of key states: the head rebuilt over the key parts the newest list
 * names. Null when there are no parts yet (the first publish, or a pool of no
 * keys): then the pool is read whole. "again" when a publish of every key
 * recorded a newer list after this one read it: its head must not name the
 * older parts.
 */
async function publishStates(deps: PublishDeps, now: number): Promise<Published | null> {
  const { rows, states, keyParts, version } = await readStateRows(deps.foldDbs ?? [deps.db], now);
  if (keyParts.names.length === 0) return null;
  const head = buildStateHead(rows, states, keyParts, version, now);
  if (!(await publishHead(deps.db, deps.kv, head, keyParts.version))) {
    return (await readPartsVersion(deps.db)) === keyParts.version ? "superseded" : "again";
  }
  deps.published.remember(head);
  if (deps.onPublished) {
    try {
      const snapshot = await deps.published.parts.assemble(deps.kv, head);
      await deps.onPublished(snapshot, await alertExtras(deps.foldDbs ?? [deps.db], head));
    } catch (err) {
      console.error(`keypool consumer: the pool's alerts were not evaluated for this publish: ${err instanceof Error ? err.message : "error"}`);
    }
  }
  return { version };
}

/**
 * A publish of the whole pool: key parts written where they changed, their list
 * recorded (unless a publish that read the pool later recorded its own), the
 * head written. "again" when a publish of states that read the older list wrote
 * a newer head meanwhile: a publish of states then names this list.
 */
async function publishAll(deps: PublishDeps, now: number): Promise<Published> {
  const { rows, version } = await readPoolRows(deps.foldDbs ?? [deps.db], now);
  const snapshot = buildSnapshot(rows, version, now);
  const parts = splitKeys(snapshot.keys);
  const names = await writeKeyParts(deps.db, deps.kv, parts);
  if (
    !(await recordKeyParts(
      deps.db,
      names,
      parts.map((p) => p.length),
      version,
      now,
    ))
  )
    return "superseded";
  const head = headOf(snapshot, names);
  if (!(await publishHead(deps.db, deps.kv, head))) return "again";
  deps.published.remember(head);
  deps.published.parts.hold(names, parts);
  await deps.onPublished?.(snapshot, new Map(rows.keys.map((k) => [k.id, { masked: k.masked, balance: k.balance }])));
  return { version };
}

/**
 * Publishes the states only, or the whole pool when `keys` may have changed (or
 * nothing was published in parts yet); then deletes the parts retired long enough.
 */
async function publishNow(deps: PublishDeps, keys: boolean): Promise<Published> {
  const now = deps.now();
  const published = (keys ? null : await publishStates(deps, now)) ?? (await publishAll(deps, now));
  try {
    await deleteRetiredParts(deps.db, deps.kv, now);
  } catch (err) {
    console.error(`keypool consumer: deleting retired snapshot parts failed (the next publish tries again): ${err instanceof Error ? err.message : "error"}`);
  }
  return published;
}

/**
 * Republishes the snapshot after a committed batch if the batch changed what it
 * shows. Writes are coalesced to one a second across all consumers: a batch whose
 * change a later claim will read anyway does nothing (a change to keys needs a
 * later claim that reads every key); otherwise it waits for the next free second
 * and publishes itself. Returns the version published, if any.
 */
export async function publishIfStale(events: KeypoolEvent[], settings: Settings, deps: PublishDeps): Promise<number | null> {
  let keys = changesKeys(events);
  if (!keys && !(await snapshotIsStale(events, settings, deps))) return null;
  let committedAt = deps.now();
  const giveUpAt = committedAt + PUBLISH_PATIENCE_MS;
  while (deps.now() < giveUpAt) {
    const claims = await readPublishClaims(deps.db);
    // Someone claimed after this batch committed: their read includes it.
    if ((keys ? claims.keys : claims.any) > committedAt) return null;
    const wait = claims.any + PUBLISH_INTERVAL_MS - deps.now();
    if (wait > 0) {
      await deps.sleep(wait);
      continue;
    }
    if (!(await claimPublish(deps.db, deps.now(), PUBLISH_INTERVAL_MS, keys))) continue;
    const published = await publishNow(deps, keys);
    if (published === "superseded") return null;
    if (published !== "again") return published.version;
    // Two consumers' publishes crossed (see publishStates, publishAll): states are published again, over the newest list, at the next free second.
    keys = false;
    committedAt = deps.now();
  }
  console.error("keypool consumer: could not claim a snapshot publish in time; the next publish will include this change");
  return null;
}
