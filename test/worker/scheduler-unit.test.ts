import { createExecutionContext, createScheduledController, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { HOUR_MS, type KeypoolEvent } from "../../schema";
import gateway from "../../gateway/index";
import { runScheduled } from "../../scheduler";

/** An event outbox with nothing waiting. */
const empty = async () => ({ sent: 0, waiting: 0 });

describe("scheduler", () => {
  it("prunes exactly the rollup rows and dedupe ids past their horizons", async () => {
    const now = Date.now();
    const insert = (table: string, bucket: number, key: string) =>
      env.DB.prepare(`INSERT INTO ${table} (bucket, key_id, model, client_key_id, requests) VALUES (?1, ?2, 'm', '*', 1)`).bind(bucket, key).run();
    const tag = crypto.randomUUID();
    await insert("rollup_minute", now - 49 * HOUR_MS, `${tag}-old`);
    await insert("rollup_minute", now - 47 * HOUR_MS, `${tag}-new`);
    await insert("rollup_hour", now - 36 * 24 * HOUR_MS, `${tag}-old`);
    await insert("rollup_hour", now - 34 * 24 * HOUR_MS, `${tag}-new`);
    const poolOld = now - 36 * 24 * HOUR_MS - Math.floor(Math.random() * 1e6);
    const poolNew = now - 34 * 24 * HOUR_MS - Math.floor(Math.random() * 1e6);
    await env.DB.prepare("INSERT INTO rollup_pool_hour (bucket, requests) VALUES (?1, 1), (?2, 1)").bind(poolOld, poolNew).run();
    await env.DB.prepare("INSERT INTO seen_events (id, ts) VALUES (?1, ?2), (?3, ?4)")
      .bind(`${tag}-old`, now - 73 * HOUR_MS, `${tag}-new`, now - HOUR_MS)
      .run();

    const emitted: KeypoolEvent[] = [];
    await runScheduled({
      db: env.DB,
      now: () => now,
      emit: async (e) => void emitted.push(...e),
      fetch,
      decrypt: async (s) => s,
      openAlertSecret: async (s) => s,
      drainOutbox: empty,
    });

    const left = async (table: string) =>
      (await env.DB.prepare(`SELECT key_id FROM ${table} WHERE key_id LIKE ?1`).bind(`${tag}%`).all<{ key_id: string }>()).results.map((r) => r.key_id);
    expect(await left("rollup_minute")).toEqual([`${tag}-new`]);
    expect(await left("rollup_hour")).toEqual([`${tag}-new`]);
    const pool = await env.DB.prepare("SELECT bucket FROM rollup_pool_hour WHERE bucket IN (?1, ?2)").bind(poolOld, poolNew).all<{ bucket: number }>();
    expect(pool.results.map((r) => r.bucket)).toEqual([poolNew]);
    const ids = (await env.DB.prepare("SELECT id FROM seen_events WHERE id LIKE ?1").bind(`${tag}%`).all<{ id: string }>()).results.map((r) => r.id);
    expect(ids).toEqual([`${tag}-new`]);
  });

  it("asks the consumer to republish a snapshot that is stale, and not a fresh one", async () => {
    const emitted: KeypoolEvent[] = [];
    const deps = {
      db: env.DB,
      emit: async (e: KeypoolEvent[]) => void emitted.push(...e),
      fetch,
      decrypt: async (s: string) => s,
      openAlertSecret: async (s: string) => s,
      drainOutbox: empty,
    };
    const setGeneratedAt = (t: number) => env.DB.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_generated_at'").bind(t).run();
    const before = await env.DB.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_generated_at'").first<number>("value");
    await setGeneratedAt(1_000);
    const stale = await runScheduled({ ...deps, now: () => 1_000 + 11 * 60_000 });
    expect(stale.refreshRequested).toBe(true);
    expect(emitted).toMatchObject([{ type: "admin", action: "snapshot.refresh", actor: "scheduler" }]);
    const fresh = await runScheduled({ ...deps, now: () => 1_000 + 60_000 });
    expect(fresh.refreshRequested).toBe(false);
    expect(emitted).toHaveLength(1);
    await setGeneratedAt(before ?? 0);
  });

  it("reports a failed outbox drain and still does the rest of its run", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const emitted: KeypoolEvent[] = [];
    const report = await runScheduled({
      db: env.DB,
      now: () => Date.now(),
      emit: async (e) => void emitted.push(...e),
      fetch,
      decrypt: async (s) => s,
      openAlertSecret: async (s) => s,
      drainOutbox: async () => Promise.reject(new Error("queue down")),
    });
    expect(report.outbox).toBe("failed");
    expect(report.pruned).toHaveProperty("seen_events");
    expect(String(error.mock.calls[0]![0])).toContain("event outbox drain failed");
    error.mockRestore();
  });

  it("runs from the gateway Worker's scheduled() handler, sending on what the outbox kept", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const id = crypto.randomUUID();
    const kept: KeypoolEvent = { v: 1, type: "admin", id, ts: Date.now(), actor: "test", action: "test.outbox", target: null, detail: null };
    await env.DB.prepare("INSERT INTO event_outbox (created_at, events, body) VALUES (?1, 1, ?2)")
      .bind(Date.now(), JSON.stringify({ events: [kept] }))
      .run();
    const ctx = createExecutionContext();
    await gateway.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const line = log.mock.calls.map(([l]) => String(l)).find((l) => l.startsWith("keypool scheduler: probed"));
    expect(line).toMatch(/outbox [1-9]\d* event\(s\) sent, 0 message\(s\) waiting/);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM event_outbox").first("n")).toBe(0);
    // The consumer folds it like any queued event: it reaches the audit log.
    await vi.waitFor(async () => expect(await env.DB.prepare("SELECT action FROM audit_log WHERE id = ?1").bind(id).first("action")).toBe("test.outbox"), {
      timeout: 5_000,
    });
    log.mockRestore();
  });
});
