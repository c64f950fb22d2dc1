import { deriveKeyState, type KeypoolEvent, type KeyState, type Outcome, type Settings, type Snapshot } from "../schema";
import { buildSnapshot, type PoolRows } from "./logic/build-snapshot";
import { changesSnapshot } from "./logic/rollup-rows";
import { claimPublish, readPublishClaim } from "../storage/snapshot-meta";
import { publishSnapshot, readKeyFacts, readPoolRows, readPublishedSnapshot } from "./storage/snapshot-store";

/** KV allows one write per second to a key. */
const PUBLISH_INTERVAL_MS = 1_000;
/** How long a batch keeps trying to get its change published before leaving it to the next publish. */
const PUBLISH_PATIENCE_MS = 10_000;

/**
 * The key states of the last snapshot an isolate saw published (by itself, or
 * read from KV), so deciding whether a batch changed them rarely reads KV. One
 * per isolate; a fresh one knows nothing and reads KV the first time.
 */
export class PublishedStates {
  private last: { version: number; states: Map<string, KeyState> } | null = null;

  /** The key states of snapshot `version`, from memory if this isolate published or read it, else from KV. */
  async of(kv: KVNamespace, version: number): Promise<Map<string, KeyState>> {
    if (!this.last || version > this.last.version) {
      const snapshot = await readPublishedSnapshot(kv);
      this.last = { version: snapshot?.version ?? 0, states: new Map(snapshot?.keys.map((k) => [k.id, k.state]) ?? []) };
    }
    return this.last.states;
  }

  /** Remembers the snapshot this isolate just published. */
  remember(snapshot: Snapshot): void {
    this.last = { version: snapshot.version, states: new Map(snapshot.keys.map((k) => [k.id, k.state])) };
  }
}

export interface PublishDeps {
  db: D1Database;
  kv: KVNamespace;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  published: PublishedStates;
  /** Called with each snapshot this consumer published and the rows it was built from (alerts). */
  onPublished?: (snapshot: Snapshot, rows: PoolRows) => Promise<void>;
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
  const first = await readKeyFacts(deps.db, [...degraded]);
  const states = await deps.published.of(deps.kv, first.publishedVersion);
  const revivable = [...touched].filter((id) => !degraded.has(id) && (states.get(id) ?? "active") !== "active");
  const facts = revivable.length === 0 ? first.facts : new Map([...first.facts, ...(await readKeyFacts(deps.db, revivable)).facts]);
  const now = deps.now();
  return [...degraded, ...revivable].some((id) => {
    const key = facts.get(id);
    if (!key) return false; // deleted since
    const state = key.enabled ? deriveKeyState(key.facts, settings, now).state : "disabled";
    return state !== (states.get(id) ?? "active");
  });
}

/** Reads the pool, builds the snapshot and writes it; remembers what it published. */
async function publishNow(deps: PublishDeps): Promise<number | null> {
  const { rows, version } = await readPoolRows(deps.db, deps.now());
  const snapshot = buildSnapshot(rows, version, deps.now());
  if (!(await publishSnapshot(deps.db, deps.kv, snapshot))) return null;
  deps.published.remember(snapshot);
  await deps.onPublished?.(snapshot, rows);
  return version;
}

/**
 * Republishes the snapshot after a committed batch if the batch changed what it
 * shows. Writes are coalesced to one a second across all consumers: a batch whose
 * change a later claim will read anyway does nothing; otherwise it waits for the
 * next free second and publishes itself. Returns the version published, if any.
 */
export async function publishIfStale(events: KeypoolEvent[], settings: Settings, deps: PublishDeps): Promise<number | null> {
  if (!(await snapshotIsStale(events, settings, deps))) return null;
  const committedAt = deps.now();
  const giveUpAt = committedAt + PUBLISH_PATIENCE_MS;
  while (deps.now() < giveUpAt) {
    const claimedAt = await readPublishClaim(deps.db);
    // Someone claimed after this batch committed: their read includes it.
    if (claimedAt > committedAt) return null;
    const wait = claimedAt + PUBLISH_INTERVAL_MS - deps.now();
    if (wait > 0) {
      await deps.sleep(wait);
      continue;
    }
    if (await claimPublish(deps.db, deps.now(), PUBLISH_INTERVAL_MS)) return publishNow(deps);
  }
  console.error("keypool consumer: could not claim a snapshot publish in time; the next publish will include this change");
  return null;
}
