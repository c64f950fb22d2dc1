import type { AttemptEvent, PriceBook } from "../../schema";

/**
 * What a request's attempts cost at the prices the snapshot carries, in
 * micro-units, priced as the consumer will price them (an attempt without a
 * price counts nothing here; the consumer counts it as unpriced).
 */
export function requestCost(prices: PriceBook, events: readonly AttemptEvent[]): number {
  let total = 0;
  for (const e of events) total += prices.attemptCost(e)[0];
  return total;
}
