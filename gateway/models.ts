import { providerKinds, type SnapshotClientKey, type SnapshotUpstream } from "../schema";
import type { LocalObservations } from "./logic/local-observations";
import type { SecretCache } from "./logic/secrets";
import type { LoadedPool } from "./storage/snapshot-cache";

export interface ModelsDeps {
  fetch: typeof fetch;
  now: () => number;
  random: () => number;
  secrets: SecretCache;
  observations: LocalObservations;
}

/** An entry of the OpenAI models list. */
export interface ModelEntry {
  id: string;
  object: "model";
  created: number;
  owned_by: string;
}

const LIVE_TTL_MS = 5 * 60_000;
const LIVE_FAILURE_TTL_MS = 30_000;
const LIVE_TIMEOUT_MS = 10_000;

/** Models fetched from upstreams that have no configured list, per isolate. */
const liveModels = new Map<string, { at: number; ttl: number; ids: string[] }>();

/** Asks an upstream with no configured model list what it serves, with one of its usable keys. */
async function fetchUpstreamModels(pool: LoadedPool, upstream: SnapshotUpstream, deps: ModelsDeps): Promise<string[]> {
  const now = deps.now();
  const cached = liveModels.get(upstream.id);
  if (cached && now - cached.at < cached.ttl) return cached.ids;
  const usable = pool.snapshot.keys.filter(
    (k) => k.upstreamId === upstream.id && (k.state === "active" || k.state === "cooling") && deps.observations.blockedUntilOf(k.id, now) === undefined,
  );
  const key = usable[Math.floor(deps.random() * usable.length)];
  let ids: string[] = [];
  let ttl = LIVE_FAILURE_TTL_MS;
  if (key) {
    try {
      const kind = providerKinds[upstream.kind];
      const res = await deps.fetch(`${upstream.baseUrl}/models`, {
        headers: { [kind.authHeader]: kind.authPrefix + (await deps.secrets.decrypt(key.secret)), accept: "application/json" },
        signal: AbortSignal.timeout(LIVE_TIMEOUT_MS),
      });
      if (res.ok) {
        const body = (await res.json()) as { data?: { id?: unknown }[] };
        ids = (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === "string");
        ttl = LIVE_TTL_MS;
      } else await res.body?.cancel();
    } catch {
      // An unreachable upstream lists nothing; the next call after the short TTL tries again.
    }
  }
  if (liveModels.size > 1_000) liveModels.clear();
  liveModels.set(upstream.id, { at: now, ttl, ids });
  return ids;
}

/**
 * The union of the models of enabled upstreams that have keys, as this client key
 * may use them: configured lists and aliases, or for an upstream with no list,
 * what it reports itself (cached for a few minutes). De-duplicated, sorted.
 */
export async function listModels(pool: LoadedPool, client: SnapshotClientKey, deps: ModelsDeps): Promise<ModelEntry[]> {
  const withKeys = new Set(pool.snapshot.keys.filter((k) => k.state !== "disabled" && k.state !== "dead").map((k) => k.upstreamId));
  const upstreams = pool.snapshot.upstreams.filter((u) => u.enabled && withKeys.has(u.id));
  const lists = await Promise.all(
    upstreams.map(async (u) => ({
      owner: providerKinds[u.kind].id,
      ids: [...(u.models.length > 0 ? u.models : await fetchUpstreamModels(pool, u, deps)), ...Object.keys(u.aliases)],
    })),
  );
  const created = Math.floor(pool.snapshot.generatedAt / 1000);
  const seen = new Map<string, ModelEntry>();
  for (const { owner, ids } of lists) {
    for (const id of ids) {
      if (seen.has(id) || (client.models.length > 0 && !client.models.includes(id))) continue;
      seen.set(id, { id, object: "model", created, owned_by: owner });
    }
  }
  return [...seen.values()].sort((a, b) => a.id.localeCompare(b.id));
}
