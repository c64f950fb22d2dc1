import { parseStoredSettings, snapshotSchema, type KeyState, type Snapshot } from "../../schema";

/** Configuration and health rows as the consumer reads them from D1. */
export interface PoolRows {
  upstreams: { id: string; name: string; base_url: string; kind: string; models: string; aliases: string; enabled: number }[];
  keys: {
    id: string;
    upstream_id: string;
    secret_enc: string;
    weight: number;
    models: string;
    enabled: number;
    state: string | null;
    cooling_until: number | null;
    success_rate: number | null;
  }[];
  clientKeys: {
    id: string;
    name: string;
    hash: string;
    models: string;
    rpm_limit: number | null;
    tpm_limit: number | null;
    expires_at: number | null;
    enabled: number;
  }[];
  settings: string | null;
}

/**
 * Builds the snapshot the gateway serves from: configuration joined with health,
 * key secrets still encrypted. Validated so a snapshot the gateway would refuse is
 * never published.
 */
export function buildSnapshot(rows: PoolRows, version: number, now: number): Snapshot {
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
    })),
    keys: rows.keys.map((k) => ({
      id: k.id,
      upstreamId: k.upstream_id,
      secret: k.secret_enc,
      weight: k.weight,
      models: JSON.parse(k.models),
      state: (k.enabled === 1 ? (k.state ?? "active") : "disabled") as KeyState,
      coolingUntil: k.cooling_until,
      successRate: k.success_rate ?? 1,
    })),
    clientKeys: rows.clientKeys.map((c) => ({
      id: c.id,
      name: c.name,
      hash: c.hash,
      models: JSON.parse(c.models),
      rpmLimit: c.rpm_limit,
      tpmLimit: c.tpm_limit,
      expiresAt: c.expires_at,
      enabled: c.enabled === 1,
    })),
    settings: parseStoredSettings(rows.settings),
  });
}
