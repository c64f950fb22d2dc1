import { z } from "zod";

/**
 * What models cost, as data: per model (and optionally per upstream, which
 * wins over the model's pool-wide price), a price per million input, cached
 * input and output tokens, and per request where a provider bills that way.
 *
 * Money is counted in integer micro-units of the pool's currency (a millionth
 * of a dollar when it is USD): a price per million tokens in micro-units is a
 * price per token in millionths of a micro-unit, so an attempt's cost is an
 * exact integer product divided once, rounded to the nearest micro-unit, and
 * every sum after that is exact. A model without a price has an unknown cost,
 * counted apart, never as zero.
 *
 * Prices are kept with their history: a change is a new row in force from its
 * moment on, so the cost of an attempt is the price in force at the attempt's
 * time however late it is folded, and a replay of the log prices it the same.
 */

/** Micro-units in one unit of the currency. */
export const MICROS = 1_000_000;

/** Money in the currency's units (e.g. 2.5 for $2.50) → integer micro-units; at most six decimals. */
export const moneySchema = z
  .number()
  .nonnegative()
  .max(1_000_000_000)
  .refine((x) => Math.abs(x * MICROS - Math.round(x * MICROS)) < 1e-6, "at most six decimals");

/** Integer micro-units from units (after `moneySchema` has accepted them). */
export const toMicros = (units: number): number => Math.round(units * MICROS);
/** Units from integer micro-units, exact to six decimals. */
export const fromMicros = (micros: number): number => micros / MICROS;

/** One price as stored and as the snapshot carries it: micro-units per million tokens, or per request; null where the provider bills nothing that way. */
export interface Price {
  model: string;
  /** The upstream it applies to; "" for every upstream that has no price of its own for the model. */
  upstreamId: string;
  input: number | null;
  /** Prompt tokens served from the provider's cache; null: billed as input. */
  cachedInput: number | null;
  output: number | null;
  perRequest: number | null;
  /** Where the figures were read, and when (free text, shown beside them). */
  source: string;
  /** Epoch ms from which this row is in force. */
  effectiveFrom: number;
}

/** A price row in the history: a price, or (removed) the end of one. */
export interface PriceRow extends Price {
  removed: boolean;
}

const perMillion = moneySchema.nullable();

/** A price as the admin API takes it: money in the currency's units per million tokens (or per request). */
export const priceBodySchema = z
  .object({
    model: z.string().trim().min(1).max(200),
    upstreamId: z.string().trim().max(100).nullable().default(null),
    input: perMillion.default(null),
    cachedInput: perMillion.default(null),
    output: perMillion.default(null),
    perRequest: perMillion.default(null),
    source: z.string().trim().max(300).default(""),
    /** When it comes into force (epoch ms): now when left out; never in the past, which would price attempts already counted. */
    effectiveFrom: z.number().int().positive().optional(),
  })
  .strict()
  .refine((p) => p.input !== null || p.output !== null || p.perRequest !== null, {
    message: "give at least one of input, output or perRequest",
    path: ["input"],
  });
export type PriceBody = z.infer<typeof priceBodySchema>;

/** A price as the admin API shows it: money in the currency's units, exactly as entered. */
export const priceViewSchema = z.object({
  model: z.string(),
  upstreamId: z.string().nullable(),
  input: z.number().nullable(),
  cachedInput: z.number().nullable(),
  output: z.number().nullable(),
  perRequest: z.number().nullable(),
  source: z.string(),
  effectiveFrom: z.number(),
});
export type PriceView = z.infer<typeof priceViewSchema>;

export const priceListSchema = z.object({
  currency: z.string(),
  /** Prices in force now, and those set to come into force later. */
  data: z.array(priceViewSchema),
  /** Published prices of common models Keypool knows, for adding in one go. */
  published: z.object({ readOn: z.string(), prices: z.array(priceViewSchema) }),
});

/** The snapshot's copy of a price: [model, upstreamId, input, cachedInput, output, perRequest] in micro-units. */
export const snapshotPriceSchema = z.tuple([
  z.string(),
  z.string(),
  z.number().nullable(),
  z.number().nullable(),
  z.number().nullable(),
  z.number().nullable(),
]);

/** What an attempt used, as its event reports it. */
export interface BilledUsage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  /** Whether the attempt was answered (a per-request price bills those only). */
  answered: boolean;
}

/**
 * What an attempt cost under `price`, in micro-units: cached prompt tokens at
 * the cached rate (the input rate when there is none), the rest of the prompt
 * at the input rate, completion tokens (reasoning included) at the output rate,
 * plus the per-request price for an answered attempt. Exact integer arithmetic,
 * one rounding (half up) at the end.
 */
export function costMicros(price: Pick<Price, "input" | "cachedInput" | "output" | "perRequest">, u: BilledUsage): number {
  const cached = Math.min(u.cachedTokens, u.promptTokens);
  const input = price.input ?? 0;
  // Products of at most 2^31 tokens and 10^15 micro-units per million overflow a double's exact range only
  // far beyond any real price; BigInt keeps the sum exact regardless.
  const numerator =
    BigInt(u.promptTokens - cached) * BigInt(input) +
    BigInt(cached) * BigInt(price.cachedInput ?? input) +
    BigInt(u.completionTokens) * BigInt(price.output ?? 0);
  const tokens = Number((numerator + BigInt(MICROS / 2)) / BigInt(MICROS));
  return tokens + (u.answered && price.perRequest !== null ? price.perRequest : 0);
}

/** Whether an attempt incurred anything a price could bill: tokens, or an answer. */
export const billable = (u: BilledUsage): boolean => u.promptTokens > 0 || u.completionTokens > 0 || u.answered;

/** What pricing an attempt reads of its event. */
export interface AttemptCostInput {
  ts: number;
  upstreamId: string;
  model: string;
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
  outcome: string;
}

/**
 * The prices in force at any moment, from their history: for a model at an
 * upstream, the upstream's own latest row in force (unless it was removed),
 * else the model's pool-wide one.
 */
export class PriceBook {
  /** Rows by `${upstreamId}\u0000${model}`, oldest first. */
  private readonly rows = new Map<string, PriceRow[]>();

  /**
   * @param since Attempts before this moment are not priced (nor counted unpriced): those a database
   *   folded before it knew prices (migration 0014), so a replay leaves them as they were folded.
   */
  constructor(
    history: readonly PriceRow[],
    readonly since = 0,
  ) {
    for (const r of [...history].sort((a, b) => a.effectiveFrom - b.effectiveFrom)) {
      const k = `${r.upstreamId}\u0000${r.model}`;
      const list = this.rows.get(k);
      if (list) list.push(r);
      else this.rows.set(k, [r]);
    }
  }

  private inForce(upstreamId: string, model: string, at: number): Price | null {
    const list = this.rows.get(`${upstreamId}\u0000${model}`);
    if (!list) return null;
    for (let i = list.length - 1; i >= 0; i--) {
      const r = list[i]!;
      if (r.effectiveFrom <= at) return r.removed ? null : r;
    }
    return null;
  }

  /** The price of `model` served by `upstreamId` at `at`, or null when it has none (unknown cost). */
  priceAt(upstreamId: string, model: string, at: number): Price | null {
    if (this.rows.size === 0) return null;
    return this.inForce(upstreamId, model, at) ?? this.inForce("", model, at);
  }

  /**
   * What an attempt cost at the price in force when it was sent: [micro-units, 1 when it had usage and no price].
   * An attempt before `since`, or without usage or an answer, costs nothing and is not unpriced.
   */
  attemptCost(e: AttemptCostInput): [number, 0 | 1] {
    if (e.ts < this.since) return [0, 0];
    const usage = { promptTokens: e.promptTokens, completionTokens: e.completionTokens, cachedTokens: e.cachedTokens, answered: e.outcome === "ok" };
    if (!billable(usage)) return [0, 0];
    const price = this.priceAt(e.upstreamId, e.model, e.ts);
    return price ? [costMicros(price, usage), 0] : [0, 1];
  }

  /** The prices a snapshot carries (those in force when it was written), as a book. */
  static fromSnapshot(prices: readonly z.infer<typeof snapshotPriceSchema>[]): PriceBook {
    return new PriceBook(
      prices.map(([model, upstreamId, input, cachedInput, output, perRequest]) => ({
        model,
        upstreamId,
        input,
        cachedInput,
        output,
        perRequest,
        source: "",
        effectiveFrom: 0,
        removed: false,
      })),
    );
  }

  /** Every price in force at `at`, then those set to come into force after it. */
  current(at: number): Price[] {
    const now: Price[] = [];
    const later: Price[] = [];
    for (const list of this.rows.values()) {
      const i = list.findLastIndex((r) => r.effectiveFrom <= at);
      if (i >= 0 && !list[i]!.removed) now.push(list[i]!);
      for (const r of list.slice(i + 1)) if (!r.removed) later.push(r);
    }
    return [...now, ...later];
  }
}

/** When the published prices below were read. */
export const PUBLISHED_PRICES_READ_ON = "2026-12-04";

/**
 * Published prices of a few common models in USD per million tokens, as their
 * providers' pricing pages gave them when read (the source says which page).
 * Adding them is the admin's choice: a provider changes its prices, and a
 * model served under another name (e.g. `openai/gpt-4o` at OpenRouter) needs
 * its own row.
 */
export const PUBLISHED_PRICES: readonly Omit<PriceBody, "effectiveFrom" | "upstreamId">[] = [
  { model: "gpt-4o", input: 2.5, cachedInput: 1.25, output: 10, perRequest: null, source: "developers.openai.com/api/docs/pricing" },
  { model: "gpt-4o-mini", input: 0.15, cachedInput: 0.075, output: 0.6, perRequest: null, source: "developers.openai.com/api/docs/pricing" },
  { model: "text-embedding-3-small", input: 0.02, cachedInput: null, output: null, perRequest: null, source: "developers.openai.com/api/docs/pricing" },
  { model: "text-embedding-3-large", input: 0.13, cachedInput: null, output: null, perRequest: null, source: "developers.openai.com/api/docs/pricing" },
  { model: "deepseek-chat", input: 0.27, cachedInput: 0.07, output: 1.1, perRequest: null, source: "api-docs.deepseek.com/quick_start/pricing-details-usd" },
  {
    model: "deepseek-reasoner",
    input: 0.55,
    cachedInput: 0.14,
    output: 2.19,
    perRequest: null,
    source: "api-docs.deepseek.com/quick_start/pricing-details-usd",
  },
];
