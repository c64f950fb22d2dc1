import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MINUTE_MS, SNAPSHOT_KV_KEY, SNAPSHOT_PART_PREFIX, SNAPSHOT_VERSION_KV_KEY, failureEntry, type KeypoolEvent, type Snapshot } from "../../schema";
import { readSnapshot } from "../../storage/snapshot-reader";
import { buildSnapshot } from "../../stats-consumer/logic/build-snapshot";
import { PublishedStates, publishIfStale } from "../../stats-consumer/publish";
import { buildStateHead } from "../../stats-consumer/logic/build-snapshot";
import { publishHead, readPoolRows, readStateRows, recordKeyParts, writeKeyParts } from "../../stats-consumer/storage/snapshot-store";
import { headOf, splitKeys } from "../../schema";
import { defaultSettings } from "../../schema";

/**
 * The snapshot in parts: a publish of key states writes the head only, and what
 * readers assemble from it is the snapshot a publish of the whole pool builds;
 * a change of keys rewrites only the parts it touched; parts no head names are
 * deleted an hour later.
 */

const UPSTREAM = "u-parts";
const KEYS = 2_500; // two parts

/** The snapshot's KV namespace, recording which keys are written. */
function recording(kv: KVNamespace) {
  const puts: string[] = [];
  const wrapped = new Proxy(kv, {
    get(target, prop) {
      if (prop === "put") return (key: string, ...rest: unknown[]) => (puts.push(key), (target.put as (...a: unknown[]) => Promise<void>)(key, ...rest));
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { puts, kv: wrapped };
}

const admin = (action: string, ts: number): KeypoolEvent => ({
  v: 1,
  type: "admin",
  id: crypto.randomUUID(),
  ts,
  actor: "t",
  action,
  target: null,
  detail: null,
});

/** The snapshot a publish of the whole pool would build at `now`, keys in id order, version and time left out. */
async function expected(now: number): Promise<Omit<Snapshot, "version" | "generatedAt">> {
  const { version: _v, generatedAt: _g, ...rest } = buildSnapshot((await readPoolRows([env.DB], now)).rows, 0, now);
  return { ...rest, keys: [...rest.keys].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

async function published(): Promise<Omit<Snapshot, "version" | "generatedAt">> {
  const { version: _v, generatedAt: _g, ...rest } = (await readSnapshot(env.SNAPSHOT))!;
  return { ...rest, keys: [...rest.keys].sort((a, b) => (a.id < b.id ? -1 : 1)) };
}

async function addKeys(ids: string[], now: number): Promise<void> {
  await env.DB.prepare(
    `INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at)
     SELECT value, ?2, 'v1.' || value || '.sealed', value, 'sk-…' || substr(value, -4), ?3, ?3 FROM json_each(?1)`,
  )
    .bind(JSON.stringify(ids), UPSTREAM, now)
    .run();
}

async function health(key: string, facts: Record<string, number | string>): Promise<void> {
  const columns = Object.keys(facts);
  await env.DB.prepare(
    `INSERT INTO key_health (key_id, ${columns.join(", ")}) VALUES (?1, ${columns.map((_, i) => `?${i + 2}`).join(", ")})
     ON CONFLICT (key_id) DO UPDATE SET ${columns.map((c) => `${c} = excluded.${c}`).join(", ")}`,
  )
    .bind(key, ...Object.values(facts))
    .run();
}

describe("the snapshot in parts", () => {
  it("assembles from a head of states the snapshot a full publish builds, and writes only what changed", async () => {
    const t0 = Date.now();
    const published_ = new PublishedStates();
    const publish = (events: KeypoolEvent[], at: number, kv: KVNamespace = env.SNAPSHOT) =>
      publishIfStale(events, defaultSettings, { db: env.DB, kv, now: () => at, sleep: async () => {}, published: published_ });

    await env.DB.prepare(
      "INSERT INTO upstreams (id, name, base_url, kind, models, enabled, created_at, updated_at) VALUES (?1, 'parts', 'https://parts.test/v1', 'custom', '[\"m-parts\"]', 1, ?2, ?2)",
    )
      .bind(UPSTREAM, t0)
      .run();
    const ids = Array.from({ length: KEYS }, (_, i) => `k-${String(i).padStart(5, "0")}`);
    await addKeys(ids, t0);
    // Keys in every state, a disabled one, and success rates below 1.
    await health(ids[0]!, { last_ok_ts: t0 - 10_000, last_auth_fail_ts: t0 - 5_000 }); // dead
    await health(ids[1]!, { last_ok_ts: t0 - 10_000, last_no_balance_ts: t0 - 5_000 }); // exhausted
    await health(ids[2]!, { last_rate_limit_ts: t0 - 1_000, cool_until: t0 + 600_000 }); // cooling
    await health(ids[3]!, { last_rate_limit_ts: t0 - 100_000, cool_until: t0 - 50_000 }); // cooled down: active
    await health(ids[4]!, { failures: JSON.stringify([1, 2, 3, 4, 5].map((i) => failureEntry(t0 - i * 1_000, `e${i}`))) }); // failing
    await health(ids[5]!, { last_ok_ts: t0, failures: JSON.stringify([failureEntry(t0 - 1_000, "old")]) }); // failed, then recovered
    await env.DB.prepare("UPDATE keys SET enabled = 0 WHERE id IN (?1, ?2)").bind(ids[6], ids[7]).run();
    const bucket = Math.floor(t0 / MINUTE_MS) * MINUTE_MS;
    for (const [key, attempts, successes] of [
      [ids[7]!, 4, 1],
      [ids[8]!, 10, 9],
      [ids[9]!, 3, 3],
    ] as const) {
      await env.DB.prepare(
        "INSERT INTO rollup_minute (bucket, key_id, model, client_key_id, requests, attempts, successes, upstream_error) VALUES (?1, ?2, 'm-parts', '*', ?3, ?3, ?4, ?3 - ?4)",
      )
        .bind(bucket, key, attempts, successes)
        .run();
    }

    // The first publish reads every key: two parts, the head, the version.
    const first = recording(env.SNAPSHOT);
    expect(await publish([admin("keys.add", t0)], t0, first.kv)).toBeGreaterThan(0);
    const parts = first.puts.filter((k) => k.startsWith(SNAPSHOT_PART_PREFIX));
    expect(parts).toHaveLength(2);
    expect(first.puts.filter((k) => !k.startsWith(SNAPSHOT_PART_PREFIX))).toEqual([SNAPSHOT_KV_KEY, SNAPSHOT_VERSION_KV_KEY]);
    const snapshot = await published();
    expect(snapshot).toEqual(await expected(t0));
    const stateOf = (s: typeof snapshot, id: string) => s.keys.find((k) => k.id === id)!;
    expect([0, 1, 2, 3, 4, 5, 6].map((i) => stateOf(snapshot, ids[i]!).state)).toEqual([
      "dead",
      "exhausted",
      "cooling",
      "active",
      "failing",
      "active",
      "disabled",
    ]);
    expect(stateOf(snapshot, ids[7]!)).toMatchObject({ state: "disabled", successRate: 3 / 6 });
    expect(stateOf(snapshot, ids[8]!).successRate).toBeCloseTo(11 / 12);
    expect(stateOf(snapshot, ids[9]!).successRate).toBe(1);
    // The head holds the states that are not the default, not the keys.
    const head = JSON.parse((await env.SNAPSHOT.get(SNAPSHOT_KV_KEY))!) as { states: Record<string, unknown>; keyParts: string[] };
    expect(Object.keys(head.states).sort()).toEqual([ids[0], ids[1], ids[2], ids[4], ids[7], ids[8]]);
    expect(head.keyParts.sort()).toEqual([...parts].sort());

    // States change (a key revives, another is rejected, a cooling ends): the head is all that is written.
    const t1 = t0 + 700_000;
    await health(ids[0]!, { last_ok_ts: t1 - 1_000 });
    await health(ids[20]!, { last_ok_ts: t0, last_auth_fail_ts: t1 - 500 });
    const second = recording(env.SNAPSHOT);
    expect(await publish([admin("snapshot.refresh", t1)], t1, second.kv)).toBeGreaterThan(0);
    expect(second.puts).toEqual([SNAPSHOT_KV_KEY, SNAPSHOT_VERSION_KV_KEY]);
    const states = await published();
    expect(states).toEqual(await expected(t1));
    expect([0, 2, 20].map((i) => stateOf(states, ids[i]!).state)).toEqual(["active", "active", "dead"]);

    // A key added: one part rewritten under a new name, the other kept; the replaced one retired.
    const t2 = t1 + 2_000;
    await addKeys(["k-added"], t2);
    const third = recording(env.SNAPSHOT);
    expect(await publish([admin("keys.add", t2)], t2, third.kv)).toBeGreaterThan(0);
    const rewritten = third.puts.filter((k) => k.startsWith(SNAPSHOT_PART_PREFIX));
    expect(rewritten).toHaveLength(1);
    expect(parts).not.toContain(rewritten[0]);
    expect(await published()).toEqual(await expected(t2));
    const retired = await env.DB.prepare("SELECT name FROM snapshot_parts WHERE retired_at IS NOT NULL").all<{ name: string }>();
    expect(retired.results).toHaveLength(1);
    const [old] = retired.results.map((r) => r.name);
    expect(parts).toContain(old);

    // Within the hour the retired part stays (an isolate may hold the older head); after it, it is deleted.
    await publish([admin("snapshot.refresh", t2 + 30 * MINUTE_MS)], t2 + 30 * MINUTE_MS);
    expect(await env.SNAPSHOT.get(old!)).not.toBeNull();
    await publish([admin("snapshot.refresh", t2 + 61 * MINUTE_MS)], t2 + 61 * MINUTE_MS);
    expect(await env.SNAPSHOT.get(old!)).toBeNull();
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM snapshot_parts").first<{ n: number }>())!.n).toBe(2);
    expect((await published()).keys).toHaveLength(KEYS + 1);
  });

  it("never lets a head name an older part list when two consumers' publishes cross", async () => {
    const upstream = "u-cross";
    await env.DB.prepare(
      "INSERT INTO upstreams (id, name, base_url, kind, models, enabled, created_at, updated_at) VALUES (?1, 'cross', 'https://cross.test/v1', 'custom', '[]', 1, ?2, ?2)",
    )
      .bind(upstream, Date.now())
      .run();
    const add = (id: string) =>
      env.DB.prepare("INSERT INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at) VALUES (?1, ?2, 'v1.x.y', ?1, 'sk-…', 1, 1)")
        .bind(id, upstream)
        .run();
    const published = new PublishedStates();
    // Later than every claim the test before made.
    let t = Date.now() + 180 * MINUTE_MS;
    const publish = (events: KeypoolEvent[], kv: KVNamespace = env.SNAPSHOT) =>
      publishIfStale(events, defaultSettings, { db: env.DB, kv, now: () => t, sleep: async (ms) => void (t += ms), published });
    await add("cross-1");
    expect(await publish([admin("keys.add", t)])).toBeGreaterThan(0);
    const names = async () => new Set(JSON.parse((await env.SNAPSHOT.get(SNAPSHOT_KV_KEY))!).keyParts as string[]);
    const listed = async () =>
      new Set((await env.DB.prepare("SELECT name FROM snapshot_parts WHERE retired_at IS NULL").all<{ name: string }>()).results.map((r) => r.name));

    // 1. A publish of every key reads the pool, then one of states reads (a newer version, the older list), then the
    //    first records its list and writes its head: the publish of states must not write a head over the older list.
    await add("cross-2");
    t += 2_000;
    const all = await readPoolRows([env.DB], t);
    const states = await readStateRows([env.DB], t);
    expect(states.version).toBeGreaterThan(all.version);
    const snapshot = buildSnapshot(all.rows, all.version, t);
    const parts = splitKeys(snapshot.keys);
    const partNames = await writeKeyParts(env.DB, env.SNAPSHOT, parts);
    expect(
      await recordKeyParts(
        env.DB,
        partNames,
        parts.map((p) => p.length),
        all.version,
        t,
      ),
    ).toBe(true);
    expect(await publishHead(env.DB, env.SNAPSHOT, headOf(snapshot, partNames))).toBe(true);
    const stale = buildStateHead(states.rows, states.states, states.keyParts, states.version, t);
    expect(await publishHead(env.DB, env.SNAPSHOT, stale, states.keyParts.version)).toBe(false);
    expect(await names()).toEqual(new Set(partNames));
    // An older publish of every key cannot record its list over a newer one's either.
    expect(await recordKeyParts(env.DB, ["snapshot:v2:keys:older"], [1], all.version - 1, t)).toBe(false);
    expect(await listed()).toEqual(new Set(partNames));

    // 2. The other order: the publish of states writes its head (over the older list) before the publish of every key
    //    records its own; that one's head is then refused, and it publishes states again, over its list.
    await add("cross-3");
    t += 2_000;
    let crossed = false;
    const interleaving = new Proxy(env.SNAPSHOT, {
      get(target, prop) {
        if (prop === "put")
          return async (key: string, ...rest: unknown[]) => {
            if (key.startsWith(SNAPSHOT_PART_PREFIX) && !crossed) {
              crossed = true;
              const other = await readStateRows([env.DB], t);
              expect(
                await publishHead(env.DB, env.SNAPSHOT, buildStateHead(other.rows, other.states, other.keyParts, other.version, t), other.keyParts.version),
              ).toBe(true);
            }
            return (target.put as (...a: unknown[]) => Promise<void>)(key, ...rest);
          };
        const value = Reflect.get(target, prop) as unknown;
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    expect(await publish([admin("keys.add", t)], interleaving)).toBeGreaterThan(0);
    expect(crossed).toBe(true);
    expect(await names()).toEqual(await listed());
    const served = (await readSnapshot(env.SNAPSHOT))!.keys.map((k) => k.id);
    expect(served).toEqual(expect.arrayContaining(["cross-1", "cross-2", "cross-3"]));
  });
});
