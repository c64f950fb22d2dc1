import {
  deriveKeyState,
  parseStoredSettings,
  snapshotSchema,
  stateEntryOf,
  type Limits,
  type PriceBook,
  type Settings,
  type Snapshot,
  type SnapshotHead,
} from "../../schema";
import type { ClientKeyRow } from "../../storage/client-keys";
import { healthFactsFromRow } from "../../storage/key-health";
import type { KeySnapshotRow, KeyStateRow } from "../../storage/keys";
import { limitsFromColumn, type UpstreamRow } from "../../storage/upstreams";

/** `{ limits }` when there are any: most keys have none, and the snapshot is read by every isolate. */
const nonEmpty = (limits: Limits) => (Object.keys(limits).length > 0 ? { limits } : {});

/** Configuration and health rows as the consumer reads them from D1. */
export interface PoolRows {
  upstreams: UpstreamRow[];
  keys: KeySnapshotRow[];
  clientKeys: ClientKeyRow[];
  settings: string | null;
  prices: PriceBook;
}

/**
 * A key's smoothed success rate: successes over attempts that say something about
 * the key, with a prior of two successes so a new key is not judged by one request.
 */
function smoothedSuccessRate(successes: number, judged: number): number {
  return (successes + 2) / (judged + 2);
}

/** A key's state, cooling time and success rate at `now`, from its admin state, health facts and success counts. */
function keyState(k: KeyStateRow, settings: Settings, now: number) {
  const health = deriveKeyState(healthFactsFromRow(k), settings, now);
  return {
    state: k.enabled === 1 ? health.state : ("disabled" as const),
    coolingUntil: health.coolingUntil,
    successRate: smoothedSuccessRate(k.successes ?? 0, k.judged ?? 0),
  };
}

/**
 * Builds the snapshot the gateway serves from: configuration joined with each
 * key's state (derived from its health facts at `now`) and recent success rate,
 * key secrets still encrypted. Validated so a snapshot the gateway would refuse is
 * never published.
 */
export function buildSnapshot(rows: PoolRows, version: number, now: number): Snapshot {
  const settings = parseStoredSettings(rows.settings);
  return snapshotSchema.parse({
    version,
    generatedAt: now,
    upstreams: rows.upstreams.map((u) => ({
      id: u.id,
      name: u.name,
      baseUrl: u.base_url,
      kind: u.kind,
      models: JSON.parse(u.models),
      aliases: JSON.parse(u.aliases),
      enabled: u.enabled === 1,
      ...nonEmpty(limitsFromColumn(u.limits)),
    })),
    keys: rows.keys.map((k) => ({
      id: k.id,
      upstreamId: k.upstream_id,
      secret: k.secret_enc,
      weight: k.weight,
      models: JSON.parse(k.models),
      ...keyState(k, settings, now),
      ...nonEmpty(limitsFromColumn(k.limits)),
    })),
    clientKeys: rows.clientKeys.map((c) => ({
      id: c.id,
      name: c.name,
      hash: c.hash,
      models: JSON.parse(c.models),
      rpmLimit: c.rpm_limit,
      tpmLimit: c.tpm_limit,
      rpdLimit: c.rpd_limit,
      tpdLimit: c.tpd_limit,
      monthlyTokenLimit: c.monthly_token_limit,
      dailyBudgetMicros: c.daily_budget_micros,
      monthlyBudgetMicros: c.monthly_budget_micros,
      expiresAt: c.expires_at,
      enabled: c.enabled === 1,
      smoothStreams: c.smooth_streams === null ? null : c.smooth_streams === 1,
      storeBodies: c.store_bodies === null || c.store_bodies === undefined ? null : c.store_bodies === 1,
    })),
    settings,
    // Those in force now: a change set for later reaches the isolates with the next snapshot after it.
    prices: rows.prices
      .current(now)
      .filter((p) => p.effectiveFrom <= now)
      .map((p) => [p.model, p.upstreamId, p.input, p.cachedInput, p.output, p.perRequest]),
  });
}

/**
 * The head of a snapshot whose keys did not change, only their states: the
 * configuration from `rows` (its `keys` unused), the key parts last published
 * (`keyParts`, holding `keyCount` keys), and the state of each key in
 * `states` (the rows of `selectKeyStates`) that is not the default.
 */
export function buildStateHead(
  rows: Omit<PoolRows, "keys">,
  states: KeyStateRow[],
  keyParts: { names: string[]; keyCount: number },
  version: number,
  now: number,
): SnapshotHead {
  const config = buildSnapshot({ ...rows, keys: [] }, version, now);
  const entries: SnapshotHead["states"] = {};
  for (const row of states) {
    const entry = stateEntryOf(keyState(row, config.settings, now));
    if (entry) entries[row.id] = entry;
  }
  const { keys: _none, ...rest } = config;
  return { format: 2, ...rest, keyParts: keyParts.names, keyCount: keyParts.keyCount, states: entries };
}
