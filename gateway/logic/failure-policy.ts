import type { Outcome } from "../../schema";

/** What the pool does about one upstream answer. */
export interface Verdict {
  outcome: Outcome;
  /** Try another key for this request. */
  retry: boolean;
  /** Keep this key out of selection in this isolate until now + blockMs (0: not blocked). */
  blockMs: number;
  /** The block is only an avoidance: the key is still taken when every other key is out (transient errors). */
  soft?: boolean;
  /**
   * A 429 that says a quota or a day's limit is spent: the key cools until the
   * provider's reset, which the caller works out (the headers, else the key's day).
   */
  quota?: boolean;
}

const BALANCE_HINT = /insufficient[_ ](balance|quota|funds)|balance (is )?(insufficient|not enough)|quota exceeded|exceeded your current quota/i;
/** A 429 for money: the balance is spent (no reset will help). */
const NO_MONEY_HINT = /insufficient[_ ](balance|funds)|balance (is )?(insufficient|not enough)/i;
/** A 429 for a quota or a day's limit: spent until the provider's window resets. */
const QUOTA_HINT = /insufficient[_ ]quota|quota (exceeded|exhausted)|exceeded your current quota|per day|daily (limit|quota)|\b(RPD|TPD)\b/i;
/** A Retry-After this long is no short rate limit but a window that resets much later. */
const QUOTA_RETRY_AFTER_MS = 3_600_000;
const INVALID_KEY_HINT = /invalid[_ ]api[_ ]key|incorrect api key|api key (is )?invalid/i;

const DEAD_BLOCK_MS = 10 * 60_000;
const ERROR_BLOCK_MS = 5_000;

/**
 * Classifies an upstream answer per the failure policy: 429 cools the key (until
 * the provider's reset when it says a quota or a day's limit is spent), 401/403
 * or an invalid-key message kills it, 402 or a balance message exhausts it, 5xx
 * counts as a failure; any other 4xx is the client's fault and is passed through.
 * `bodyText` is a short prefix of the error body, used only for the hints; a 429
 * without Retry-After cools the key for `defaultCooldownMs` (the setting the
 * consumer folds the same 429 with, so the isolate and the pool agree).
 */
export function classifyResponse(status: number, retryAfterMs: number | null, bodyText: string, defaultCooldownMs: number): Verdict {
  if (status >= 200 && status < 400) return { outcome: "ok", retry: false, blockMs: 0 };
  if (status === 429) {
    if (NO_MONEY_HINT.test(bodyText)) return { outcome: "no_balance", retry: true, blockMs: DEAD_BLOCK_MS };
    if (QUOTA_HINT.test(bodyText) || (retryAfterMs ?? 0) > QUOTA_RETRY_AFTER_MS)
      return { outcome: "rate_limited", retry: true, blockMs: retryAfterMs ?? 0, quota: true };
    return { outcome: "rate_limited", retry: true, blockMs: retryAfterMs ?? defaultCooldownMs };
  }
  if (status === 401 || status === 403) return { outcome: "auth_failed", retry: true, blockMs: DEAD_BLOCK_MS };
  if (status === 402) return { outcome: "no_balance", retry: true, blockMs: DEAD_BLOCK_MS };
  if (status >= 500) return { outcome: "upstream_error", retry: true, blockMs: ERROR_BLOCK_MS, soft: true };
  if (INVALID_KEY_HINT.test(bodyText)) return { outcome: "auth_failed", retry: true, blockMs: DEAD_BLOCK_MS };
  if (BALANCE_HINT.test(bodyText)) return { outcome: "no_balance", retry: true, blockMs: DEAD_BLOCK_MS };
  return { outcome: "client_error", retry: false, blockMs: 0 };
}

/** A fetch that threw (connection refused, reset, timeout): retry elsewhere, briefly avoid the key. */
export function classifyNetworkError(): Verdict {
  return { outcome: "network_error", retry: true, blockMs: ERROR_BLOCK_MS, soft: true };
}
