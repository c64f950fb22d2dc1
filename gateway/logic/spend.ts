import { billable, costMicros, type AttemptEvent, type Snapshot } from "../../schema";

/** The snapshot's prices by upstream and model ("" for every upstream), for pricing this isolate's own requests. */
export type PriceIndex = Map<string, { input: number | null; cachedInput: number | null; output: number | null; perRequest: number | null }>;

const priceKey = (upstreamId: string, model: string) => `${upstreamId}\u0000${model}`;

export function priceIndexOf(snapshot: Snapshot): PriceIndex {
  return new Map(
    snapshot.prices.map(([model, upstreamId, input, cachedInput, output, perRequest]) => [
      priceKey(upstreamId, model),
      { input, cachedInput, output, perRequest },
    ]),
  );
}

/**
 * What a request's attempts cost at the prices the snapshot carries, in
 * micro-units, as the consumer will count them (an attempt without a price
 * counts nothing here; the consumer counts it as unpriced).
 */
export function requestCost(prices: PriceIndex, events: readonly AttemptEvent[]): number {
  if (prices.size === 0) return 0;
  let total = 0;
  for (const e of events) {
    const usage = { promptTokens: e.promptTokens, completionTokens: e.completionTokens, cachedTokens: e.cachedTokens, answered: e.outcome === "ok" };
    if (!billable(usage)) continue;
    const price = prices.get(priceKey(e.upstreamId, e.model)) ?? prices.get(priceKey("", e.model));
    if (price) total += costMicros(price, usage);
  }
  return total;
}
