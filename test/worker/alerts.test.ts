import { createMessageBatch } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, inject, it } from "vitest";
import { verifySignature, type AlertKind, type DeliveredAlert, type KeypoolEvent } from "../../schema";
import { scheduledAlerts } from "../../scheduler";
import { handleBatch, isolateDeps } from "../../stats-consumer/handle-batch";
import { deliverDue } from "../../storage/alerts";
import { SecretCache } from "../../gateway/logic/secrets";
import { attemptEvent } from "../fixtures/events";
import { FAKE_BASE_URL } from "./fake-upstream";
import { admin, adminToken, createPool, gateway, waitFor } from "./helpers";
import { TEST_SECRETS } from "./secrets";

const RECEIVER = `http://127.0.0.1:${inject("receiverPort")}`;

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

/** What the receiver got at a path. */
async function received(path: string): Promise<Received[]> {
  return (await fetch(`${RECEIVER}/received?path=${encodeURIComponent(path)}`)).json();
}

/** Every alert delivered to a path, each with its message's headers. */
async function alertsAt(path: string): Promise<{ alert: DeliveredAlert; message: Received }[]> {
  return (await received(path)).flatMap((message) => (JSON.parse(message.body) as { alerts: DeliveredAlert[] }).alerts.map((alert) => ({ alert, message })));
}

/** Firing (or resolved) items about `subject` delivered to a path. */
async function itemsAbout(path: string, subject: string, kind: AlertKind, status: "firing" | "resolved" = "firing") {
  return (await alertsAt(path)).filter(({ alert }) => alert.kind === kind && alert.status === status && alert.items.some((i) => i.subject === subject));
}

/** Waits until the receiver got exactly one firing alert of `kind` about `subject`, and a moment more to be sure no second one follows. */
async function exactlyOnce(path: string, subject: string, kind: AlertKind, status: "firing" | "resolved" = "firing") {
  await waitFor(
    async () => ((await itemsAbout(path, subject, kind, status)).length > 0 ? true : undefined),
    `a ${kind} ${status} alert about ${subject}`,
    20_000,
  );
  await new Promise((r) => setTimeout(r, 1_500));
  const found = await itemsAbout(path, subject, kind, status);
  expect(found, `${kind} ${status} about ${subject}`).toHaveLength(1);
  return found[0]!;
}

async function sendEvents(events: KeypoolEvent[]): Promise<void> {
  await env.EVENTS.send({ events }, { contentType: "json" });
}

/** A webhook destination at a fresh path of the receiver; its signing secret. */
async function destination(kind: "ok" | "fail" | "slow", kinds: AlertKind[] = []) {
  const path = `/hook/${kind}/${crypto.randomUUID()}`;
  const res = await admin<{ id: string; url: string; signingSecret: string }>("POST", "/alerts/destinations", {
    name: `test ${kind}`,
    kind: "webhook",
    url: `${RECEIVER}${path}`,
    kinds,
  });
  expect(res.status).toBe(201);
  return { path, id: res.body.id, secret: res.body.signingSecret, shown: res.body.url };
}

async function keyIds(upstreamId: string): Promise<string[]> {
  const res = await admin<{ data: { id: string }[] }>("GET", `/keys?upstreamId=${upstreamId}&limit=1000`);
  return res.body.data.map((k) => k.id);
}

const base = { upstreamId: "", clientKeyId: "c", model: "" };

describe("alerts", () => {
  it("configures destinations with the URL sealed and masked, and refuses bad ones in the OpenAI error shape", async () => {
    const d = await destination("ok");
    expect(d.secret).toMatch(/^whsec_/);
    expect(d.shown).not.toContain(d.path);
    const list = await admin<{ data: { id: string; url: string; signingSecret?: string }[] }>("GET", "/alerts/destinations");
    const mine = list.body.data.find((x) => x.id === d.id)!;
    expect(mine.url).toBe(d.shown);
    expect(JSON.stringify(list.body)).not.toContain(d.path);
    expect(mine.signingSecret).toBeUndefined();
    const row = await env.DB.prepare("SELECT url_enc, secret_enc FROM alert_destinations WHERE id = ?1")
      .bind(d.id)
      .first<{ url_enc: string; secret_enc: string }>();
    expect(row!.url_enc).not.toContain(d.path);
    expect(row!.secret_enc).not.toContain(d.secret);
    const bad = await admin<{ error: { param: string; code: string | null } }>("POST", "/alerts/destinations", {
      name: "x",
      kind: "webhook",
      url: "ftp://nope",
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("url");
    expect((await admin("DELETE", "/alerts/destinations/nope")).status).toBe(404);
    // A test message: signed, and its outcome in the answer and the history.
    const test = await admin<{ delivered: boolean; status: number; alertId: string }>("POST", `/alerts/destinations/${d.id}/test`);
    expect(test.body).toMatchObject({ delivered: true, status: 200 });
    const [message] = await received(d.path);
    expect(
      await verifySignature(d.secret, message!.headers["keypool-signature"]!, message!.headers["keypool-timestamp"]!, message!.body, Date.now() / 1000),
    ).toBe(true);
    expect(
      await verifySignature("whsec_wrong", message!.headers["keypool-signature"]!, message!.headers["keypool-timestamp"]!, message!.body, Date.now() / 1000),
    ).toBe(false);
    expect(
      await verifySignature(d.secret, message!.headers["keypool-signature"]!, message!.headers["keypool-timestamp"]!, message!.body, Date.now() / 1000 + 600),
    ).toBe(false);
    const history = await admin<{ alerts: { id: string; kind: string; deliveries: { status: string }[] }[] }>("GET", "/alerts?kind=test");
    expect(history.body.alerts.find((a) => a.id === test.body.alertId)?.deliveries[0]?.status).toBe("sent");
  });

  it("sends one signed alert per state change of each kind the consumer sees, within seconds", async () => {
    await admin("PATCH", "/settings", {
      alerts: { cooldownMinutes: 0, rules: { model_headroom: { enabled: true, threshold: 0.5 }, client_quota: { enabled: true, threshold: 0.8 } } },
    });
    const d = await destination("ok");
    const pool = await createPool(FAKE_BASE_URL, ["sk-alert-a-000000000001", "sk-alert-b-000000000002", "sk-alert-c-000000000003", "sk-alert-d-000000000004"], {
      client: { rpdLimit: 5 },
    });
    const [dead, exhausted, failing, last] = await keyIds(pool.upstreamId);
    const on = { ...base, upstreamId: pool.upstreamId, model: pool.model };
    const now = Date.now();
    await sendEvents([
      attemptEvent({ ...on, keyId: dead!, outcome: "auth_failed", status: 401, final: false }),
      attemptEvent({ ...on, keyId: exhausted!, outcome: "no_balance", status: 402, final: false }),
      ...[1, 2, 3, 4, 5].map((i) => attemptEvent({ ...on, keyId: failing!, outcome: "upstream_error", status: 502, final: false, ts: now + i })),
    ]);
    const deadAlert = await exactlyOnce(d.path, `key:${dead}`, "key_dead");
    await exactlyOnce(d.path, `key:${exhausted}`, "key_exhausted");
    await exactlyOnce(d.path, `key:${failing}`, "key_failing");
    await exactlyOnce(d.path, `model:${pool.model}:headroom`, "model_headroom");
    expect(Date.now() - now).toBeLessThan(20_000);

    // The last key: its balance reported low, then cooled by a 429 — every key in service for the model is cooling.
    await sendEvents([
      { v: 1, type: "probe", id: crypto.randomUUID(), ts: Date.now(), keyId: last!, kind: "balance", result: "ok", balance: 0.5, detail: null },
    ]);
    const lowBalance = await exactlyOnce(d.path, `balance:${last}`, "low_balance");
    // Alerts after a publish of states name keys by their masked form too (read for the keys they name).
    expect(deadAlert.alert.items.find((i) => i.subject === `key:${dead}`)?.label).toMatch(/^sk-al…\d{4} \(/);
    expect(lowBalance.alert.items.find((i) => i.subject === `balance:${last}`)?.label).toMatch(/^sk-al…\d{4} \(/);
    await sendEvents([attemptEvent({ ...on, keyId: last!, outcome: "rate_limited", status: 429, retryAfterMs: 120_000, final: false })]);
    await exactlyOnce(d.path, `model:${pool.model}:cooling`, "model_all_cooling");

    // A client key with 5 requests a day: at 4 it is warned, at 5 it is full.
    const served = () => attemptEvent({ ...on, keyId: last!, clientKeyId: pool.clientKeyId });
    await sendEvents([served(), served(), served(), served()]);
    const warn = await waitFor(
      async () =>
        (await alertsAt(d.path)).find(
          ({ alert }) => alert.kind === "client_quota" && alert.items.some((i) => i.subject.startsWith(`client:${pool.clientKeyId}:rpd:`)),
        ),
      "the client quota warning",
      20_000,
    );
    expect(warn.alert.items.find((i) => i.subject.startsWith(`client:${pool.clientKeyId}:rpd:`))!.detail).toContain("4 of 5");
    await sendEvents([served()]);
    await waitFor(
      async () =>
        (await alertsAt(d.path)).filter(
          ({ alert }) => alert.kind === "client_quota" && alert.items.some((i) => i.subject.startsWith(`client:${pool.clientKeyId}:rpd:`)),
        ).length === 2 || undefined,
      "the client quota at 100 %",
      20_000,
    );
    const quota = (await alertsAt(d.path)).filter(
      ({ alert }) => alert.kind === "client_quota" && alert.items.some((i) => i.subject.startsWith(`client:${pool.clientKeyId}:rpd:`)),
    );
    expect(quota.map(({ alert }) => alert.items.find((i) => i.subject.startsWith(`client:${pool.clientKeyId}`))!.detail)).toEqual([
      expect.stringContaining("4 of 5"),
      expect.stringContaining("5 of 5"),
    ]);

    // The dead key works again: its condition clears, said once.
    await sendEvents([attemptEvent({ ...on, keyId: dead!, ts: Date.now() })]);
    await exactlyOnce(d.path, `key:${dead}`, "key_dead", "resolved");

    // The pool's share of keys in service: switched off (its condition cleared), then on at 100 % — some key
    // of the pool is out of service (three of ours are), so it fires, once.
    await admin("PATCH", "/settings", { alerts: { cooldownMinutes: 0, rules: { pool_active_keys: { enabled: false, threshold: 0.5 } } } });
    await waitFor(
      async () => ((await env.DB.prepare("SELECT 1 FROM alert_state WHERE subject = 'pool:active'").first()) === null ? true : undefined),
      "the pool condition to clear",
    );
    const enabledAt = Date.now();
    await admin("PATCH", "/settings", { alerts: { cooldownMinutes: 0, rules: { pool_active_keys: { enabled: true, threshold: 1 } } } });
    const firing = async () => (await itemsAbout(d.path, "pool:active", "pool_active_keys")).filter(({ message }) => message.at >= enabledAt);
    await waitFor(async () => ((await firing()).length > 0 ? true : undefined), "the pool's keys-in-service alert", 20_000);
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await firing()).toHaveLength(1);

    // A message the consumer cannot read goes to the dead-letter queue, and says so.
    const before = (await alertsAt(d.path)).filter(({ alert }) => alert.kind === "dead_letters").length;
    await env.EVENTS.send({ type: "not-an-event" }, { contentType: "json" });
    await waitFor(
      async () => ((await alertsAt(d.path)).filter(({ alert }) => alert.kind === "dead_letters").length > before ? true : undefined),
      "the dead-letter alert",
      20_000,
    );

    // Every message the receiver got verifies, with the secret shown once.
    for (const message of await received(d.path)) {
      expect(
        await verifySignature(d.secret, message.headers["keypool-signature"]!, message.headers["keypool-timestamp"]!, message.body, Date.now() / 1000),
      ).toBe(true);
    }
    expect(deadAlert.alert.title).toMatch(/dead/);
  }, 150_000);

  it("raises consumer_failing after batches in a row fail and clears it after a success; a stale snapshot from the scheduler", async () => {
    await admin("PATCH", "/settings", { alerts: { cooldownMinutes: 0, rules: { consumer_failing: { enabled: true, threshold: 2 } } } });
    const d = await destination("ok", ["consumer_failing", "snapshot_stale"]);
    const deps = isolateDeps();
    const pending: Promise<unknown>[] = [];
    const broken = { ...env, ARCHIVE: { ...env.ARCHIVE, put: async () => Promise.reject(new Error("archive unavailable")) } } as unknown as ConsumerEnv;
    const batch = () =>
      createMessageBatch("keypool-events", [{ id: crypto.randomUUID(), timestamp: new Date(), attempts: 1, body: attemptEvent({ keyId: "k-none" }) }]);
    for (let i = 0; i < 2; i++) expect((await handleBatch(batch(), broken, deps, (p) => pending.push(p))).retried).toBe(true);
    await Promise.all(pending);
    await exactlyOnce(d.path, "consumer:batches", "consumer_failing");
    expect((await handleBatch(batch(), env as unknown as ConsumerEnv, deps, (p) => pending.push(p))).retried).toBe(false);
    await Promise.all(pending);
    await exactlyOnce(d.path, "consumer:batches", "consumer_failing", "resolved");

    const secrets = new SecretCache(TEST_SECRETS.ALERT_ENCRYPTION_KEY, "ALERT_ENCRYPTION_KEY");
    const { readSettings } = await import("../../storage/settings");
    const settings = await readSettings(env.DB);
    const schedulerDeps = {
      db: env.DB,
      emit: async () => {},
      drainOutbox: async () => ({ sent: 0, waiting: 0 }),
      fetch: (input: RequestInfo | URL, init?: RequestInit) => fetch(input, init),
      decrypt: async (s: string) => s,
      openAlertSecret: (s: string) => secrets.decrypt(s),
      now: () => Date.now() + 3_600_000,
    };
    const report = await scheduledAlerts(schedulerDeps, settings, Date.now(), Date.now() + 3_600_000);
    expect(report.raised).toBeGreaterThanOrEqual(1);
    await exactlyOnce(d.path, "snapshot:age", "snapshot_stale");
    await scheduledAlerts(schedulerDeps, settings, Date.now(), Date.now());
    await exactlyOnce(d.path, "snapshot:age", "snapshot_stale", "resolved");
  }, 90_000);

  it("groups a thousand keys dying in one batch into one alert, retries a failing destination until it fails, and never holds the batch for a slow one", async () => {
    await admin("PATCH", "/settings", { alerts: { cooldownMinutes: 0 } });
    const ok = await destination("ok", ["key_dead"]);
    const failing = await destination("fail", ["key_dead"]);
    const slow = await destination("slow", ["key_dead"]);
    const secrets = Array.from({ length: 1000 }, (_, i) => `sk-thousand-${String(i).padStart(6, "0")}-${crypto.randomUUID().slice(0, 8)}`);
    const pool = await createPool(FAKE_BASE_URL, secrets);
    const ids = await keyIds(pool.upstreamId);
    expect(ids).toHaveLength(1000);
    const t0 = Date.now();
    const events = ids.map((keyId) =>
      attemptEvent({ ...base, upstreamId: pool.upstreamId, model: pool.model, keyId, outcome: "auth_failed", status: 401, final: false }),
    );
    const messages = Array.from({ length: 10 }, (_, i) => ({
      id: crypto.randomUUID(),
      timestamp: new Date(),
      attempts: 1,
      body: { events: events.slice(i * 100, i * 100 + 100) },
    }));
    const pending: Promise<unknown>[] = [];
    const result = await handleBatch(createMessageBatch("keypool-events", messages), env as unknown as ConsumerEnv, isolateDeps(), (p) => pending.push(p));
    expect(result.retried).toBe(false);
    // The alert it raised, with its deliveries: the slow receiver (3 s) had not answered when the batch was done.
    const alert = await env.DB.prepare("SELECT id, count FROM alerts WHERE kind = 'key_dead' AND created_at >= ?1 AND count >= 1000")
      .bind(t0)
      .all<{ id: string; count: number }>();
    expect(alert.results).toHaveLength(1);
    const alertId = alert.results[0]!.id;
    const slowDelivery = await env.DB.prepare("SELECT status FROM alert_deliveries WHERE alert_id = ?1 AND destination_id = ?2")
      .bind(alertId, slow.id)
      .first<{ status: string }>();
    expect(slowDelivery!.status).toBe("pending");
    await Promise.all(pending);
    // One message about the thousand, to each destination that takes it.
    const delivered = await waitFor(async () => ((await alertsAt(ok.path)).length > 0 ? alertsAt(ok.path) : undefined), "the grouped alert", 20_000);
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.alert).toMatchObject({ id: alertId, kind: "key_dead", status: "firing" });
    expect(delivered[0]!.alert.count).toBeGreaterThanOrEqual(1000);
    expect(delivered[0]!.alert.items).toHaveLength(100);
    await waitFor(async () => ((await received(slow.path)).length === 1 ? true : undefined), "the slow receiver's copy", 20_000);

    // The failing receiver: retried at its backoff, then failed for good and shown so.
    const row = () =>
      env.DB.prepare("SELECT status, attempts, last_status, last_error, next_at FROM alert_deliveries WHERE alert_id = ?1 AND destination_id = ?2")
        .bind(alertId, failing.id)
        .first<Record<string, unknown>>();
    // An attempt's outcome is written once every destination of its sweep answered (the slow one takes 3 s); until then
    // the row shows only the claim (an attempt counted, its lease as next_at), so wait for the outcome itself.
    await waitFor(
      async () => {
        const r = (await row())!;
        return Number(r.attempts) >= 1 && r.last_status !== null && r.next_at !== null ? true : undefined;
      },
      "the first failed attempt",
      20_000,
    );
    expect(await row()).toMatchObject({ status: "pending", last_status: 500 });
    // The consumer asked the queue to wake it for the retry (a delayed control message), one wake-up pending.
    const wakeup = await env.DB.prepare("SELECT value FROM meta WHERE name = 'alert_wakeup_at'").first<{ value: number }>();
    expect(wakeup!.value).toBeGreaterThan(t0);
    const open = new SecretCache(TEST_SECRETS.ALERT_ENCRYPTION_KEY, "ALERT_ENCRYPTION_KEY");
    let clock = Date.now();
    for (let i = 0; i < 8 && (await row())!.status === "pending"; i++) {
      clock += 2 * 3_600_000;
      await deliverDue({ db: env.DB, open: (s) => open.decrypt(s), fetch: (input, init) => fetch(input, init), now: () => clock }, [alertId]);
    }
    expect(await row()).toMatchObject({ status: "failed", attempts: 6, last_status: 500, last_error: "HTTP 500: receiver down" });
    expect((await received(failing.path)).length).toBe(6);
    const history = await admin<{ alerts: { id: string; deliveries: { destinationId: string; status: string; lastError: string }[] }[] }>(
      "GET",
      "/alerts?failed=true&kind=key_dead",
    );
    const shown = history.body.alerts.find((a) => a.id === alertId)!;
    expect(shown.deliveries.find((x) => x.destinationId === failing.id)).toMatchObject({ status: "failed", lastError: "HTTP 500: receiver down" });
    expect(shown.deliveries.find((x) => x.destinationId === ok.id)!.status).toBe("sent");
  }, 150_000);

  it("serves /metrics with the scrape token only: not without one, not with the admin session", async () => {
    await admin("DELETE", "/metrics/token");
    const refused = await gateway("/metrics");
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("invalid_scrape_token");
    const created = await admin<{ token: string }>("POST", "/metrics/token");
    expect(created.status).toBe(201);
    expect((await gateway("/metrics", { headers: { authorization: `Bearer ${await adminToken()}` } })).status).toBe(401);
    expect((await gateway("/metrics", { headers: { authorization: "Bearer kpm_wrong" } })).status).toBe(401);
    const res = await gateway("/metrics", { headers: { authorization: `Bearer ${created.body.token}` } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^# TYPE keypool_attempt_duration_seconds histogram$/m);
    expect(text).toMatch(/^keypool_attempt_duration_seconds_bucket\{upstream="[^"]+",model="[^"]+",le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^keypool_consumer_lag_seconds [\d.]+$/m);
    expect(text).toMatch(/^keypool_dead_letters_total \d+$/m);
    expect(text).toMatch(/^keypool_d1_seconds_total\{work="fold_rollups"\} [\d.e-]+$/m);
    expect(text).toMatch(/^keypool_d1_database_seconds_total\{database="1"\} [\d.e-]+$/m);
    expect(text).toMatch(/^keypool_d1_rows_written_total\{work="usage_publish"\} \d+$/m);
    expect(text).toMatch(/^keypool_consumer_folded_events_total \d+$/m);
    // Every line is a comment or a sample of the text format, and every sample's family is declared.
    const declared = new Set([...text.matchAll(/^# TYPE (\w+) (counter|gauge|histogram)$/gm)].map((m) => m[1]));
    for (const line of text.trimEnd().split("\n")) {
      if (line.startsWith("# HELP ") || line.startsWith("# TYPE ")) continue;
      const m = /^(\w+)(\{(\w+="([^"\\\n]|\\["\\n])*"(,\w+="([^"\\\n]|\\["\\n])*")*)?\})? (-?[\d.]+(e[+-]?\d+)?|NaN|\+Inf)$/.exec(line);
      expect(m, line).not.toBeNull();
      expect(declared.has(m![1]!.replace(/_(bucket|sum|count)$/, "")) || declared.has(m![1]!), line).toBe(true);
    }
    expect((await admin<{ configured: boolean }>("GET", "/metrics/token")).body.configured).toBe(true);
    await admin("DELETE", "/metrics/token");
    expect((await gateway("/metrics", { headers: { authorization: `Bearer ${created.body.token}` } })).status).toBe(401);
  });
});
