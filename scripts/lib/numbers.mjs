// @ts-check
/** Small statistics the bench and the chaos run share. */

/**
 * The `p` quantile of `xs` (nearest rank below); NaN for none.
 * @param {number[]} xs
 * @param {number} p
 */
export function percentile(xs, p) {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

/** @param {number[]} xs */
export const median = (xs) => percentile(xs, 0.5);
