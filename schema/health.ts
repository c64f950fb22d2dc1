import type { KeyState } from "./snapshot";

/** How many recent failures a key's health keeps. */
export const KEPT_FAILURES = 16;

/** The facts the consumer keeps per key (one `key_health` row). */
export interface HealthFacts {
  lastOkTs: number;
  lastRateLimitTs: number;
  coolUntil: number;
  lastAuthFailTs: number;
  lastNoBalanceTs: number;
  /** Newest failures as `ts:eventId` strings (zero-padded ts, so they sort by time). */
  failures: string[];
}

export interface HealthRules {
  /** Failures (5xx, network) since the last success that make a key `failing`… */
  failureThreshold: number;
  /** …when that many fall within this window. */
  failureWindowMs: number;
}

/** Encodes a failure for the `failures` set: sortable by time, unique per event. */
export function failureEntry(ts: number, eventId: string): string {
  return `${String(ts).padStart(15, "0")}:${eventId}`;
}

function failureTimes(facts: HealthFacts): number[] {
  return facts.failures
    .map((f) => Number(f.slice(0, f.indexOf(":"))))
    .filter((t) => t > facts.lastOkTs)
    .sort((a, b) => b - a);
}

/** The time of the newest failure since the last success, or null if there is none. */
export function lastFailureTs(facts: HealthFacts): number | null {
  return failureTimes(facts)[0] ?? null;
}

/**
 * The state a key is in at `now`, from its facts; admin-disabled keys are
 * `disabled` before any of this. Precedence: dead (auth rejected after the last
 * success) > exhausted (no balance after the last success) > failing (threshold
 * failures within the window, none succeeded since) > cooling (a 429 after the
 * last success whose Retry-After has not passed) > active. Cooling is a timer: it
 * ends by itself, so a wave of 429s never takes keys out for good.
 */
export function deriveKeyState(facts: HealthFacts, rules: HealthRules, now: number): { state: KeyState; coolingUntil: number | null } {
  if (facts.lastAuthFailTs > facts.lastOkTs) return { state: "dead", coolingUntil: null };
  if (facts.lastNoBalanceTs > facts.lastOkTs) return { state: "exhausted", coolingUntil: null };
  const fails = failureTimes(facts);
  const n = rules.failureThreshold;
  if (fails.length >= n && fails[0]! - fails[n - 1]! <= rules.failureWindowMs) return { state: "failing", coolingUntil: null };
  if (facts.lastRateLimitTs > facts.lastOkTs && facts.coolUntil > now) return { state: "cooling", coolingUntil: facts.coolUntil };
  return { state: "active", coolingUntil: null };
}
