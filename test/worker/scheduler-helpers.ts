import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { vi } from "vitest";
import { defaultSettings, deriveKeyState, type KeypoolEvent, type KeyState } from "../../schema";
import type { SchedulerDeps } from "../../scheduler";
import { handleBatch } from "../../stats-consumer/handle-batch";
import { PublishedStates } from "../../stats-consumer/publish";
import { HEALTH_FACT_COLUMNS, healthFactsFromRow } from "../../storage/key-health";

/** A clock the test sets. */
export const clock = { t: Date.now() };

/** Folds events through the real consumer, at the test's clock. */
export async function fold(events: KeypoolEvent[]): Promise<void> {
  if (events.length === 0) return;
  const batch = createMessageBatch(
    "keypool-events",
    events.map((body, i) => ({ id: `m${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body })),
  );
  const result = await handleBatch(batch, env, { now: () => clock.t, sleep: async (ms) => void (clock.t += ms), published: new PublishedStates() });
  if (result.retried || result.malformed > 0) throw new Error(`the consumer did not store the events: ${JSON.stringify(result)}`);
}

export interface FakeProbeCall {
  url: string;
  method: string;
  authorization: string | null;
}

/** Scheduler dependencies against a fake network answering `answer(url, key)`; emitted events are folded at once. */
export function schedulerDeps(answer: (url: string, key: string) => Response | Promise<Response>) {
  const calls: FakeProbeCall[] = [];
  const emitted: KeypoolEvent[] = [];
  const deps: SchedulerDeps = {
    db: env.DB,
    emit: async (events) => {
      emitted.push(...events);
      await fold(events);
    },
    fetch: vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input, init);
      const authorization = req.headers.get("authorization");
      calls.push({ url: req.url, method: req.method, authorization });
      return answer(req.url, authorization?.replace(/^Bearer /, "") ?? "");
    }) as unknown as typeof fetch,
    decrypt: async (sealed) => sealed.replace(/^plain:/, ""),
    openAlertSecret: async (sealed) => sealed,
    now: () => clock.t,
    drainOutbox: async () => ({ sent: 0, waiting: 0 }),
  };
  return { deps, calls, emitted };
}

/** Adds an upstream of `kind` at `baseUrl` and keys with the given secrets (stored as `plain:<secret>` for the fake decrypt). */
export async function addUpstreamWithKeys(kind: string, baseUrl: string, secrets: string[], enabled = true): Promise<string[]> {
  const upstreamId = crypto.randomUUID();
  const now = Date.now();
  const ids = secrets.map(() => crypto.randomUUID());
  await env.DB.batch([
    env.DB.prepare("INSERT INTO upstreams (id, name, base_url, kind, models, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, '[]', 1, ?5, ?5)").bind(
      upstreamId,
      kind,
      baseUrl,
      kind,
      now,
    ),
    ...secrets.map((secret, i) =>
      env.DB.prepare(
        "INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?1, 'sk-…', ?4, ?5, ?5)",
      ).bind(ids[i], upstreamId, `plain:${secret}`, enabled ? 1 : 0, now),
    ),
  ]);
  return ids;
}

/** A key's health row: state at the test clock, balance and last probe result. */
export async function health(keyId: string): Promise<{ state: KeyState; balance: number | null; probe: string; probeTs: number }> {
  const row = await env.DB.prepare(`SELECT ${HEALTH_FACT_COLUMNS}, h.balance, h.last_probe_result, h.last_probe_ts FROM key_health h WHERE h.key_id = ?1`)
    .bind(keyId)
    .first<Record<string, unknown>>();
  return {
    state: deriveKeyState(healthFactsFromRow(row ?? {}), defaultSettings, clock.t).state,
    balance: (row?.balance as number | null | undefined) ?? null,
    probe: String(row?.last_probe_result ?? ""),
    probeTs: Number(row?.last_probe_ts ?? 0),
  };
}
