import { describe, expect, it } from "vitest";
import { PriceBook, costMicros, moneySchema, priceBodySchema, toMicros, type PriceRow } from "../../schema";
import { toBatchRows } from "../../stats-consumer/logic/rollup-rows";
import { attemptEvent } from "../fixtures/events";

const row = (r: Partial<PriceRow> & Pick<PriceRow, "model" | "effectiveFrom">): PriceRow => ({
  upstreamId: "",
  input: null,
  cachedInput: null,
  output: null,
  perRequest: null,
  source: "",
  removed: false,
  ...r,
});

describe("money", () => {
  it("takes units with at most six decimals and turns them into exact micro-units", () => {
    expect(moneySchema.safeParse(2.5).success).toBe(true);
    expect(moneySchema.safeParse(0.000001).success).toBe(true);
    expect(moneySchema.safeParse(0.0000001).success).toBe(false);
    expect(moneySchema.safeParse(-1).success).toBe(false);
    expect(toMicros(0.075)).toBe(75_000);
    expect(toMicros(2.19)).toBe(2_190_000);
  });

  it("refuses a price that bills nothing", () => {
    expect(priceBodySchema.safeParse({ model: "m", cachedInput: 1 }).success).toBe(false);
    expect(priceBodySchema.safeParse({ model: "m", perRequest: 0.01 }).success).toBe(true);
  });
});

describe("costMicros", () => {
  const gpt4oMini = { input: toMicros(0.15), cachedInput: toMicros(0.075), output: toMicros(0.6), perRequest: null };

  it("bills cached prompt tokens at the cached rate, the rest of the prompt at input, completion at output, rounded once", () => {
    // (1000 − 400) × 0.15 + 400 × 0.075 + 250 × 0.6 = 90 + 30 + 150 micro-dollars.
    expect(costMicros(gpt4oMini, { promptTokens: 1000, completionTokens: 250, cachedTokens: 400, answered: true })).toBe(270);
    // 7 × 0.15 + 5 × 0.6 = 1.05 + 3 = 4.05 → 4.
    expect(costMicros(gpt4oMini, { promptTokens: 7, completionTokens: 5, cachedTokens: 0, answered: true })).toBe(4);
    // Without a cached rate, cached tokens are input.
    expect(costMicros({ ...gpt4oMini, cachedInput: null }, { promptTokens: 1000, completionTokens: 0, cachedTokens: 400, answered: true })).toBe(150);
  });

  it("adds a per-request price to answered attempts only, and stays exact at sizes a double would round", () => {
    const perRequest = { input: null, cachedInput: null, output: null, perRequest: 5_000 };
    expect(costMicros(perRequest, { promptTokens: 10, completionTokens: 0, cachedTokens: 0, answered: true })).toBe(5_000);
    expect(costMicros(perRequest, { promptTokens: 10, completionTokens: 0, cachedTokens: 0, answered: false })).toBe(0);
    const dear = { input: 999_999_999_999, cachedInput: null, output: 999_999_999_999, perRequest: null };
    expect(costMicros(dear, { promptTokens: 2_000_000_000, completionTokens: 2_000_000_000, cachedTokens: 0, answered: true })).toBe(3_999_999_999_996_000);
  });
});

describe("PriceBook", () => {
  const t0 = Date.UTC(2026, 11, 1);
  const book = new PriceBook([
    row({ model: "m", input: 100, effectiveFrom: t0 }),
    row({ model: "m", input: 200, effectiveFrom: t0 + 1000 }),
    row({ model: "m", upstreamId: "u2", input: 50, effectiveFrom: t0 + 500 }),
    row({ model: "m", upstreamId: "u2", effectiveFrom: t0 + 2000, removed: true }),
    row({ model: "gone", input: 1, effectiveFrom: t0 }),
    row({ model: "gone", effectiveFrom: t0 + 100, removed: true }),
    row({ model: "later", input: 7, effectiveFrom: t0 + 10_000 }),
  ]);

  it("prices by the row in force at the moment, the upstream's own over the model's", () => {
    expect(book.priceAt("u1", "m", t0 - 1)).toBeNull();
    expect(book.priceAt("u1", "m", t0)?.input).toBe(100);
    expect(book.priceAt("u1", "m", t0 + 999)?.input).toBe(100);
    expect(book.priceAt("u1", "m", t0 + 1000)?.input).toBe(200);
    expect(book.priceAt("u2", "m", t0 + 600)?.input).toBe(50);
    // The upstream's price removed: the model's pool-wide one applies again.
    expect(book.priceAt("u2", "m", t0 + 2000)?.input).toBe(200);
    expect(book.priceAt("u1", "gone", t0 + 100)).toBeNull();
    expect(book.priceAt("u1", "unknown", t0)).toBeNull();
  });

  it("prices an isolate's own attempts from the snapshot's prices the way the consumer does", () => {
    const snapshotBook = PriceBook.fromSnapshot([["m", "", 200, null, null, null]]);
    const e = attemptEvent({ ts: t0 + 1500, model: "m", upstreamId: "u1", promptTokens: 10_000, completionTokens: 0, totalTokens: 10_000 });
    expect(snapshotBook.attemptCost(e)).toEqual(book.attemptCost(e));
    expect(PriceBook.fromSnapshot([]).attemptCost(e)).toEqual([0, 1]);
  });

  it("lists the prices in force now and those to come", () => {
    const now = book.current(t0 + 3000).map((p) => [p.model, p.upstreamId, p.input]);
    expect(now).toEqual([
      ["m", "", 200],
      ["later", "", 7],
    ]);
  });

  it("prices attempts in the rollup rows: usage without a price is counted apart, an attempt without usage costs nothing", () => {
    const at = (id: string, extra: Parameters<typeof attemptEvent>[0]) =>
      attemptEvent({ id, ts: t0 + 1500, model: "m", upstreamId: "u1", promptTokens: 10_000, completionTokens: 0, totalTokens: 10_000, ...extra });
    const rows = toBatchRows(
      [at("a", {}), at("b", { model: "unknown" }), at("c", { outcome: "rate_limited", status: 429, promptTokens: 0, totalTokens: 0, final: false })],
      "UTC",
      book,
    );
    expect(rows.attempts.map((r) => [r.cost, r.unpriced, r.la])).toEqual([
      [2, 0, t0 + 1500],
      [0, 1, t0 + 1500],
      [0, 0, t0 + 1500],
    ]);
  });
});
