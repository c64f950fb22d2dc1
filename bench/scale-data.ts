/**
 * A large pool as D1 rows, for `npm run scale`: bundled by scripts/scale.mjs and
 * run in Node. Shaped like a big deployment — an upstream per thousand keys, each
 * serving five of fifty models with provider limits, half the keys with limits of
 * their own, every key with health facts and a capacity reading, a thousand client
 * keys (fewer in small pools) — and sealed with the deployment's real key, so the
 * consumer and the gateway do exactly the work they would.
 */
import { snapshotHeadSchema, snapshotSchema, type SnapshotHead } from "../schema";
import { buildPoolIndex } from "../gateway/logic/select-key";
import { SnapshotReader } from "../storage/snapshot-reader";
import { seeded } from "../tools/seeded.mjs";
import { EVENT_BATCH_DELAY_MS, EVENT_MESSAGES_PER_SECOND, EventBatcher } from "../gateway/logic/event-batcher";
import type { KeypoolEvent } from "../schema";

export {
  D1_WORKS,
  DAY_ID_LIST_BYTES,
  SNAPSHOT_KV_KEY,
  SNAPSHOT_VERSION_KV_KEY,
  USAGE_KV_KEY,
  USAGE_SPACING,
  dayCountStart,
  defaultSettings,
  keptInRequestLog,
  newEventId,
  EVENTS_PREFIX,
  archiveKey,
  idFilter,
  idFilterMayHold,
} from "../schema";
export { ARCHIVE_SEARCH } from "../storage/request-log-rows";

export { leastRetention as LEAST_RETENTION, UPSTREAM_MINUTE_HOURS } from "../schema";
export { foldShardOf } from "../schema";
export { parsePoolUsage } from "../gateway/logic/usage-view";
export { REUSE_FACTOR, REUSE_LONGEST_MS } from "../gateway/logic/reuse-windows";
export { liveFrom, planBuckets, planCost, planRangeCount, planWindowCount, poolDays } from "../stats-consumer/logic/window-count";
import { encryptSecret, importEncryptionKey, maskSecret, sha256Hex } from "../schema/crypto";

/** Key ids: this, then the key's number in 12 digits (a UUID's shape). */
export const KEY_ID_PREFIX = "5ca1e000-0000-4000-8000-";

export const MODELS = Array.from({ length: 50 }, (_, i) => `model-${String(i).padStart(2, "0")}`);

export type Row = Record<string, string | number | null>;

export interface PoolRows {
  upstreams: Row[];
  keys: Row[];
  health: Row[];
  capacity: Row[];
  clientKeys: Row[];
  /** One client key in clear, to call the gateway with. */
  clientKey: string;
  /** The models the first upstream serves. */
  firstModels: string[];
}

export async function poolRows(n: number, keyEncryptionKey: string, baseUrl: string, now = Date.now()): Promise<PoolRows> {
  const cryptoKey = await importEncryptionKey(keyEncryptionKey);
  const upstreamCount = Math.max(1, Math.round(n / 1000));
  const upstreams: Row[] = Array.from({ length: upstreamCount }, (_, u) => ({
    id: `scale-up-${u}`,
    name: `provider ${u}`,
    base_url: baseUrl,
    kind: "custom",
    models: JSON.stringify(Array.from({ length: 5 }, (_, m) => MODELS[(u * 5 + m) % MODELS.length])),
    aliases: "{}",
    limits: JSON.stringify({ rpm: 500, tpm: 200_000, rpd: 10_000 }),
    enabled: 1,
    created_at: now,
    updated_at: now,
  }));
  const keys: Row[] = [];
  const health: Row[] = [];
  const capacity: Row[] = [];
  for (let i = 0; i < n; i++) {
    // Shaped like the admin API's ids (UUIDs), so lists of ids are as long as a real pool's.
    const id = `${KEY_ID_PREFIX}${String(i).padStart(12, "0")}`;
    const plain = `sk-scale-${String(i).padStart(6, "0")}-${(i * 2654435761).toString(36).padStart(12, "x")}`;
    keys.push({
      id,
      upstream_id: `scale-up-${i % upstreamCount}`,
      secret_enc: await encryptSecret(cryptoKey, plain),
      fingerprint: await sha256Hex(plain),
      masked: maskSecret(plain),
      weight: 1 + (i % 3),
      models: "[]",
      enabled: i % 100 === 99 ? 0 : 1,
      note: "",
      limits: i % 2 === 0 ? JSON.stringify({ rpm: 60 + (i % 7) * 10, tpm: 100_000 }) : "{}",
      created_at: now - 86_400_000,
      updated_at: now - 86_400_000,
    });
    health.push({
      key_id: id,
      last_ok_ts: now - (i % 600) * 1000,
      last_rate_limit_ts: i % 20 === 0 ? now - 30_000 : 0,
      cool_until: i % 50 === 0 ? now + 60_000 : 0,
      last_auth_fail_ts: 0,
      last_no_balance_ts: 0,
      failures: "[]",
      last_error_ts: i % 20 === 0 ? now - 30_000 : 0,
      last_error: i % 20 === 0 ? "429 rate limited" : "",
      last_used_at: now - (i % 600) * 1000,
      balance: 10 + (i % 90),
      balance_ts: now - 3_600_000,
      last_probe_ts: now - 3_600_000,
      last_probe_result: "ok",
    });
    capacity.push({
      key_id: id,
      req_ts: now - 5_000,
      req_limit: 500,
      req_remaining: 400 + (i % 100),
      req_reset_at: now + 55_000,
      tok_ts: now - 5_000,
      tok_limit: 200_000,
      tok_remaining: 150_000 + (i % 50_000),
      tok_reset_at: now + 55_000,
    });
  }
  const clientCount = Math.min(1000, Math.max(10, Math.round(n / 100)));
  const clientKeys: Row[] = [];
  let clientKey = "";
  for (let c = 0; c < clientCount; c++) {
    const plain = `kp-scale-client-${String(c).padStart(4, "0")}-${"c".repeat(24)}`;
    if (c === 0) clientKey = plain;
    clientKeys.push({
      id: `scale-client-${c}`,
      name: `client ${c}`,
      hash: await sha256Hex(plain),
      masked: maskSecret(plain),
      models: "[]",
      rpm_limit: c % 4 === 0 ? 600 : null,
      tpm_limit: null,
      rpd_limit: c % 10 === 0 ? 50_000 : null,
      enabled: 1,
      created_at: now,
      updated_at: now,
    });
  }
  return { upstreams, keys, health, capacity, clientKeys, clientKey, firstModels: JSON.parse(String(upstreams[0]!.models)) as string[] };
}

export { loadPool, selectionRateOver } from "./micro";

/** The snapshot's KV text, parsed and validated as the gateway does. */
export function parseSnapshot(text: string) {
  return snapshotSchema.parse(JSON.parse(text));
}

/**
 * An isolate's hold on the snapshot, in Node: a reader over the texts the scale
 * run read from KV (head and key parts), and what loading a head costs it — the
 * parts it lacks read and validated, the keys assembled with the head's states,
 * the pool indexed, as the gateway's cache does.
 */
export function isolateOver(texts: Map<string, string>) {
  const kv = { get: async (key: string) => texts.get(key) ?? null };
  const reader = new SnapshotReader();
  return {
    async load(headText: string) {
      const snapshot = await reader.assemble(kv, snapshotHeadSchema.parse(JSON.parse(headText)));
      return { snapshot, index: buildPoolIndex(snapshot) };
    },
  };
}

/**
 * The head with `share` of the keys `ids` turned cooling at a lower success rate
 * — what a publish of states writes after a wave of 429s — and a version higher.
 */
export function headWithCooledKeys(headText: string, ids: string[], share: number, now: number): string {
  const head = JSON.parse(headText) as SnapshotHead;
  const states = { ...head.states };
  const step = Math.max(1, Math.round(1 / share));
  for (let i = 0; i < ids.length; i += step) states[ids[i]!] = ["cooling", now + 60_000, 0.8];
  return JSON.stringify({ ...head, version: head.version + 1, states });
}

/**
 * The head over the same keys with every part under a new name — what readers
 * meet when the part count doubles and every key moves — with the renamed parts
 * added to `texts`, and a version higher.
 */
export function headWithEveryPartNew(headText: string, texts: Map<string, string>): string {
  const head = JSON.parse(headText) as SnapshotHead;
  const keyParts = head.keyParts.map((name) => {
    const renamed = `${name}-moved`;
    texts.set(renamed, texts.get(name)!);
    return renamed;
  });
  return JSON.stringify({ ...head, version: head.version + 1, keyParts });
}

/**
 * Queue messages the gateway sends for `requestsPerSecond` client requests
 * spread over `isolates` isolates (arrivals at random, each isolate equally
 * likely; 1.05 attempt events a request, as a pool that retries one request in
 * twenty), for `seconds` of simulated time: the real `EventBatcher` of each
 * isolate on a simulated clock, with the production window and, unless
 * `uncapped`, the production cap on batches a second. Each isolate sends its
 * messages to `queues` event queues in turn from a random one, as the gateway's
 * sink does. Returns messages a second (all queues) and per 1,000 requests, the
 * busiest queue's messages a second, and the longest an event waited.
 */
export async function queueMessages(isolates: number, requestsPerSecond: number, seconds: number, uncapped = false, queues = 1) {
  const random = seeded(isolates * 7_919 + (uncapped ? 1 : 0));
  const perQueue = new Array<number>(queues).fill(0);
  const turns = Array.from({ length: isolates }, () => Math.floor(random() * queues));
  let t = 0;
  const timers: { at: number; fire: () => void }[] = [];
  const clock = { now: () => t, sleep: (ms: number) => new Promise<void>((fire) => timers.push({ at: t + ms, fire })) };
  let messages = 0;
  let longest = 0;
  // Each event carries when its request came (in `ts`), so a send knows how long its first one waited.
  const sendFrom = (isolate: number) => async (events: KeypoolEvent[]) => {
    for (let m = Math.ceil(events.length / 100); m > 0; m--) perQueue[turns[isolate]!++ % queues]!++;
    messages += Math.ceil(events.length / 100);
    longest = Math.max(longest, t - events[0]!.ts);
  };
  const sends = Array.from({ length: isolates }, (_, i) => sendFrom(i));
  const batchers = Array.from(
    { length: isolates },
    () => new EventBatcher(EVENT_BATCH_DELAY_MS, uncapped ? Number.POSITIVE_INFINITY : EVENT_MESSAGES_PER_SECOND, clock),
  );
  const fireUntil = async (to: number) => {
    for (;;) {
      let first = -1;
      for (let i = 0; i < timers.length; i++) if (first < 0 || timers[i]!.at < timers[first]!.at) first = i;
      if (first < 0 || timers[first]!.at > to) break;
      const [timer] = timers.splice(first, 1);
      t = timer!.at;
      timer!.fire();
      // Let the batch's send run before the clock moves on.
      for (let i = 0; i < 4; i++) await Promise.resolve();
    }
    t = to;
  };
  const end = seconds * 1000;
  let requests = 0;
  for (let at = -Math.log(1 - random()) * (1000 / requestsPerSecond); at < end; at += -Math.log(1 - random()) * (1000 / requestsPerSecond)) {
    await fireUntil(at);
    const event = { ts: at } as KeypoolEvent;
    const isolate = Math.floor(random() * isolates);
    void batchers[isolate]!.add(sends[isolate]!, random() < 0.05 ? [event, event] : [event]);
    requests++;
  }
  await fireUntil(Number.POSITIVE_INFINITY);
  return {
    messagesPerSecond: messages / seconds,
    per1000: (messages / requests) * 1000,
    busiestQueuePerSecond: Math.max(...perQueue) / seconds,
    longestWaitMs: longest,
  };
}
