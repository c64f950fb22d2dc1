import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { CountTerm } from "../../storage/rollup-sums";
import { D1_COMPOUND_TERMS, KEY_ROWS, selectKeyWindow } from "../../storage/rollups";
import { fillKept } from "../../storage/usage-kept";

const HOUR = 3_600_000;
/** Hours of their own (2003), so no other test's rows are summed. */
const T0 = Date.UTC(2003, 0, 1);

describe("sums over many terms", () => {
  it("stay within the five SELECTs D1 takes in one compound, whatever the plan holds", async () => {
    const keyId = `compound-${crypto.randomUUID()}`;
    // One key row a hour for twelve hours: the hour h holds h + 1 requests.
    const client = KEY_ROWS.split("'")[1];
    await env.DB.batch(
      Array.from({ length: 12 }, (_, h) =>
        env.DB.prepare("INSERT INTO rollup_hour (bucket, key_id, model, client_key_id, requests, total_tokens) VALUES (?1, ?2, 'm', ?3, ?4, ?5)").bind(
          T0 + h * HOUR,
          keyId,
          client,
          h + 1,
          10 * (h + 1),
        ),
      ),
    );
    // D1 itself refuses a sixth term: what the sums must keep clear of.
    const six = Array.from({ length: D1_COMPOUND_TERMS + 1 }, (_, i) => `SELECT ${i} AS v`).join(" UNION ALL ");
    await expect(env.DB.prepare(`SELECT COUNT(*) FROM (${six})`).all()).rejects.toThrow(/too many terms in compound SELECT/);
    for (const n of [5, 6, 12]) {
      // Each hour a term of its own.
      const terms: CountTerm[] = Array.from({ length: n }, (_, h) => ({ rows: "hour", from: T0 + h * HOUR, to: T0 + (h + 1) * HOUR, sign: 1 }));
      const { results } = await selectKeyWindow(env.DB, JSON.stringify([keyId]), terms).all<{ requests: number; tokens: number }>();
      expect(results, `${n} terms`).toEqual([{ key_id: keyId, requests: (n * (n + 1)) / 2, tokens: (10 * n * (n + 1)) / 2 }]);
      // The kept sums add a term of zeros to the plan's.
      await env.DB.prepare("DELETE FROM usage_kept WHERE key_id = ?1").bind(keyId).run();
      await fillKept(env.DB, JSON.stringify([keyId]), T0, T0 + n * HOUR, terms).run();
      expect(await env.DB.prepare("SELECT requests, tokens FROM usage_kept WHERE key_id = ?1").bind(keyId).first(), `${n} terms kept`).toEqual({
        requests: (n * (n + 1)) / 2,
        tokens: (10 * n * (n + 1)) / 2,
      });
    }
    await env.DB.batch([
      env.DB.prepare("DELETE FROM rollup_hour WHERE key_id = ?1").bind(keyId),
      env.DB.prepare("DELETE FROM usage_kept WHERE key_id = ?1").bind(keyId),
    ]);
  });
});
