import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import {
  SNAPSHOT_KV_KEY,
  SNAPSHOT_VERSION_KV_KEY,
  defaultSettings,
  headOf,
  type AttemptEvent,
  type KeypoolEvent,
  type Outcome,
  type Snapshot,
} from "../../schema";
import { readSnapshot } from "../../storage/snapshot-reader";
import { handleBatch } from "../../stats-consumer/handle-batch";
import { toHealthRows } from "../../stats-consumer/logic/health-rows";
import { PublishedStates, publishIfStale } from "../../stats-consumer/publish";
import { publishHead } from "../../stats-consumer/storage/snapshot-store";
import { attemptEvent } from "../fixtures/events";

function attempt(keyId: string, outcome: Outcome, ts: number, extra: Partial<AttemptEvent> = {}): AttemptEvent {
  return attemptEvent({ keyId, outcome, ts, status: outcome === "ok" ? 200 : 401, upstreamId: "u-health", clientKeyId: "c-health", ...extra });
}

/** A clock the test moves, and a sleep that moves it. */
function fakeTime(start: number) {
  const clock = { t: start, slept: [] as number[] };
  return {
    clock,
    now: () => clock.t,
    sleep: async (ms: number) => {
      clock.slept.push(ms);
      clock.t += ms;
    },
  };
}

async function deliver(events: KeypoolEvent[], time = fakeTime(Date.now())) {
  const batch = createMessageBatch(
    "keypool-events",
    events.map((body, i) => ({ id: `m${i}-${crypto.randomUUID()}`, timestamp: new Date(), attempts: 1, body })),
  );
  return handleBatch(batch, env, { now: time.now, sleep: time.sleep, published });
}

async function addKey(id: string, upstreamId = "u-health") {
  const now = Date.now();
  await env.DB.batch([
    env.DB.prepare(
      "INSERT OR IGNORE INTO upstreams (id, name, base_url, kind, models, enabled, created_at, updated_at) VALUES (?1, 'h', 'https://h.test/v1', 'custom', '[]', 1, ?2, ?2)",
    ).bind(upstreamId, now),
    env.DB.prepare(
      "INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at) VALUES (?1, ?2, 'v1.a.b', ?1, 'sk-…', ?3, ?3)",
    ).bind(id, upstreamId, now),
  ]);
}

async function publishedSnapshot(): Promise<Snapshot> {
  return (await readSnapshot(env.SNAPSHOT))!;
}

/** What this file's consumer knows of the published snapshot: fresh for every test. */
let published = new PublishedStates();

beforeEach(async () => {
  published = new PublishedStates();
  // Every test may publish at once.
  await env.DB.prepare("UPDATE meta SET value = 0 WHERE name IN ('snapshot_published_at', 'snapshot_keys_claimed_at')").run();
});

describe("health folding in D1", () => {
  it("stores the same facts whatever the order, batching and redelivery of events", async () => {
    const key = `k-${crypto.randomUUID()}`;
    const t = Date.now() - 60_000;
    const events = [
      attempt(key, "ok", t),
      attempt(key, "network_error", t + 1_000),
      attempt(key, "rate_limited", t + 2_000, { status: 429, retryAfterMs: 10_000 }),
      attempt(key, "upstream_error", t + 3_000, { status: 502 }),
      attempt(key, "no_balance", t + 4_000, { status: 402 }),
    ];
    await deliver([events[4]!, events[2]!]);
    await deliver([events[1]!, events[0]!, events[3]!]);
    await deliver([events[2]!, events[3]!]);
    const row = await env.DB.prepare("SELECT * FROM key_health WHERE key_id = ?1").bind(key).first<Record<string, unknown>>();
    const [expected] = toHealthRows(events, defaultSettings);
    expect(row).toMatchObject({
      last_ok_ts: expected!.ok,
      last_rate_limit_ts: expected!.rl,
      cool_until: t + 12_000,
      last_no_balance_ts: t + 4_000,
      last_auth_fail_ts: 0,
      last_error: "402 no balance",
      last_used_at: t + 4_000,
    });
    expect(JSON.parse(String(row!.failures))).toEqual(expected!.failures);
  });
});

describe("snapshot publishing", () => {
  it("republishes when an attempt changes a key's state, and not for traffic that changes nothing", async () => {
    const key = `k-${crypto.randomUUID()}`;
    await addKey(key);
    const admin: KeypoolEvent = { v: 1, type: "admin", id: crypto.randomUUID(), ts: Date.now(), actor: "t", action: "keys.add", target: null, detail: null };
    const first = await deliver([admin]);
    expect(first.published).not.toBeNull();
    expect((await publishedSnapshot()).keys.find((k) => k.id === key)?.state).toBe("active");

    const quiet = await deliver([attempt(key, "ok", Date.now())], fakeTime(Date.now() + 5_000));
    expect(quiet.published).toBeNull();

    const rejected = await deliver([attempt(key, "auth_failed", Date.now())], fakeTime(Date.now() + 10_000));
    expect(rejected.published).toBeGreaterThan(first.published!);
    expect((await publishedSnapshot()).keys.find((k) => k.id === key)?.state).toBe("dead");
  });

  it("reads no key's facts for successes on keys shown active, and still republishes when a success revives a cooling key", async () => {
    const [busy, cooled] = [`k-${crypto.randomUUID()}`, `k-${crypto.randomUUID()}`];
    await addKey(busy);
    await addKey(cooled);
    const now = Date.now() + 200_000;
    await deliver([{ v: 1, type: "admin", id: crypto.randomUUID(), ts: now, actor: "t", action: "keys.add", target: null, detail: null }], fakeTime(now));
    const factReads: string[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare") return (sql: string) => (sql.includes("key_health") && factReads.push(sql), target.prepare(sql));
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const publish = (events: KeypoolEvent[], at: number) =>
      publishIfStale(events, defaultSettings, { db, kv: env.SNAPSHOT, now: () => at, sleep: async () => {}, published });

    expect(await publish([attempt(busy, "ok", now + 1), attempt(busy, "client_error", now + 2), attempt(cooled, "ok", now + 3)], now + 5_000)).toBeNull();
    expect(factReads).toEqual([]);

    await deliver([attempt(cooled, "rate_limited", now + 10_000, { status: 429, retryAfterMs: 600_000 })], fakeTime(now + 10_000));
    expect((await publishedSnapshot()).keys.find((k) => k.id === cooled)?.state).toBe("cooling");
    // A success after the 429: the key's facts are read (the snapshot shows it cooling) and it is active again.
    await deliver([attempt(cooled, "ok", now + 20_000), attempt(busy, "ok", now + 20_000)], fakeTime(now + 20_000));
    expect((await publishedSnapshot()).keys.find((k) => k.id === cooled)?.state).toBe("active");
    expect(await publish([attempt(busy, "ok", now + 30_000)], now + 30_000)).toBeNull();
    expect(factReads).toEqual([]);
  });

  it("writes at most once a second, waiting for the next free second", async () => {
    const admin = (): KeypoolEvent => ({ v: 1, type: "admin", id: crypto.randomUUID(), ts: Date.now(), actor: "t", action: "x", target: null, detail: null });
    const time = fakeTime(Date.now() + 60_000);
    const a = await deliver([admin()], time);
    time.clock.t += 100;
    const b = await deliver([admin()], time);
    expect(time.clock.slept).toEqual([900]);
    expect(b.published).toBe(a.published! + 1);
  });

  it("leaves a change to a publish that was claimed after it committed, and a change of keys only to one that reads every key", async () => {
    const now = Date.now() + 120_000;
    const claim = (name: string, at: number) => env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = ?2").bind(at, name).run();
    const admin = (action: string): KeypoolEvent => ({ v: 1, type: "admin", id: crypto.randomUUID(), ts: now, actor: "t", action, target: null, detail: null });
    const publish = (action: string) => {
      const time = fakeTime(now);
      return publishIfStale([admin(action)], defaultSettings, { db: env.DB, kv: env.SNAPSHOT, now: time.now, sleep: time.sleep, published });
    };
    // A publish of states claimed after the batch: it rereads settings, so a settings change is left to it…
    await claim("snapshot_published_at", now + 500);
    expect(await publish("settings.update")).toBeNull();
    // …but not a change of keys, which waits for its turn and publishes every key.
    expect(await publish("keys.add")).toBeGreaterThan(0);
    // A publish of every key claimed after the batch takes a change of keys too.
    await claim("snapshot_published_at", now + 2_000);
    await claim("snapshot_keys_claimed_at", now + 2_000);
    expect(await publish("keys.add")).toBeNull();
  });

  it("never replaces a newer snapshot with an older one", async () => {
    const versionBefore = await env.DB.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_version'").first<number>("value");
    const current = await env.SNAPSHOT.getWithMetadata<{ version: number }>(SNAPSHOT_KV_KEY);
    const newer: Snapshot = {
      version: (current.metadata?.version ?? 0) + 1000,
      generatedAt: 1,
      upstreams: [],
      keys: [],
      clientKeys: [],
      settings: defaultSettings,
      prices: [],
    };
    expect(await publishHead(env.DB, env.SNAPSHOT, headOf(newer, []))).toBe(true);
    expect(await publishHead(env.DB, env.SNAPSHOT, headOf({ ...newer, version: newer.version - 1 }, []))).toBe(false);
    expect((await env.SNAPSHOT.getWithMetadata<{ version: number }>(SNAPSHOT_KV_KEY)).metadata?.version).toBe(newer.version);
    await env.SNAPSHOT.delete(SNAPSHOT_KV_KEY);
    await env.SNAPSHOT.delete(SNAPSHOT_VERSION_KV_KEY);
    await env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_version'")
      .bind(versionBefore ?? 0)
      .run();
  });
});
