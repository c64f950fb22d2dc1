// @ts-check
/** The chaos run's options (from its command line) and the constants of its fault profiles. */
import { flag, numberArg, stringArg } from "../lib/args.mjs";

export const SMOKE = flag("smoke");
/** Both Workers in programmatic Miniflare instead of `wrangler dev`, without wrangler's dev proxy in front. */
export const MINIFLARE = flag("miniflare");
export const REQUESTS = numberArg("requests", SMOKE ? 200 : 2_000);
export const CONCURRENCY = numberArg("concurrency", 20);
export const SEED = numberArg("seed", 1);
export const SOAK_SECONDS = numberArg("soak-seconds", SMOKE ? 30 : 600);
export const SOAK_RATE = numberArg("soak-rate", 40);
/** The page whose generated section the run writes, if any. */
export const WRITE = stringArg("write");

export const GOOD_KEYS = 20;
export const DEAD_KEYS = 2;
export const FAULT_RATE = 0.3;
export const SOAK_FAULT_RATE = 0.1;
/** The attempt timeout the runs set; the mock's stalls last longer. */
export const ATTEMPT_TIMEOUT_MS = 1_500;
export const SETTINGS = { maxAttempts: 6, attemptTimeoutMs: ATTEMPT_TIMEOUT_MS, requestDeadlineMs: 60_000 };
/** The soak's memory goal: after warm-up, the fitted trend may add at most this share of the memory over the run. */
export const MEMORY_GROWTH_LIMIT = 0.1;
/** Requests in flight at most during the soak; beyond that the client skips (and counts) arrivals rather than queue them. */
export const SOAK_MAX_IN_FLIGHT = 200;

/** The exact command these options amount to. */
export function command() {
  const flags = [
    `--requests ${REQUESTS}`,
    `--concurrency ${CONCURRENCY}`,
    `--seed ${SEED}`,
    `--soak-seconds ${SOAK_SECONDS}`,
    `--soak-rate ${SOAK_RATE}`,
    MINIFLARE ? "--miniflare" : "",
    SMOKE ? "--smoke" : "",
    WRITE ? `--write ${WRITE}` : "",
  ];
  return `npm run chaos -- ${flags.filter(Boolean).join(" ")}`;
}

export const log = (/** @type {string} */ m) => console.error(`chaos: ${m}`);
export const sleep = (/** @type {number} */ ms) => new Promise((r) => setTimeout(r, ms));
