import { MINUTE_MS, dayStart, monthStart, nextMonthStart, type ClientKeyStatus, type ClientUsage, type SnapshotClientKey } from "../../schema";
import { CapacityLedger, bucketWeight, minuteFreesAt, othersBuckets, type MinuteBucket } from "./capacity";

/**
 * Client keys' quotas — requests and tokens a minute and a day, tokens a month,
 * budgets a day and a month — enforced pool-wide: what the consumer last
 * counted for the client across every isolate (published beside the snapshot),
 * plus what this isolate admitted itself that the count does not hold yet.
 * Pure: data in, a verdict out; the clock is passed in.
 *
 * Per-minute windows slide: the pool's last two minute buckets, less this
 * isolate's own traffic in them, weighted the way sliding-window limiters do,
 * plus this isolate's own last 60 seconds exactly (one isolate alone is exact).
 * Days and months are the pool's, in its time zone: the consumer's count plus
 * this isolate's requests admitted after the latest attempt that count holds
 * (to the millisecond), and its tokens and spend since the count was made.
 *
 * A request is admitted while every window has room for it: one request, one
 * token (its size is known only at its end), one micro-unit of money. Its
 * tokens and cost are counted when it ends.
 */

/** Which limit refused a request (the OpenAI-shaped error's `code`). */
export type QuotaCode =
  | "rpm_limit_exceeded"
  | "tpm_limit_exceeded"
  | "daily_request_quota_exceeded"
  | "daily_token_quota_exceeded"
  | "monthly_token_quota_exceeded"
  | "daily_budget_exceeded"
  | "monthly_budget_exceeded";

/** One quota as it stands: used of limit, what one more request needs of it, and when it frees. */
export interface QuotaWindow {
  code: QuotaCode;
  kind: "requests" | "tokens" | "money";
  limit: number;
  used: number;
  /** When room for one more request comes back (only asked of a full window). */
  freesAt: () => number;
  /** When the window is next empty or starts again (for the `x-ratelimit-reset-*` headers). */
  resetAt: () => number;
}

export type QuotaVerdict =
  { ok: true; windows: QuotaWindow[] } | { ok: false; code: QuotaCode; limit: number; retryAfterMs: number; window: QuotaWindow; windows: QuotaWindow[] };

/** The pool's time zone, whose days and months the quotas count. */
export interface QuotaClock {
  now: number;
  timeZone: string;
}

/** Whether the client has any quota (most have none: the check is skipped). */
export function hasQuota(c: SnapshotClientKey): boolean {
  return (
    c.rpmLimit !== null ||
    c.tpmLimit !== null ||
    c.rpdLimit !== null ||
    c.tpdLimit !== null ||
    c.monthlyTokenLimit !== null ||
    c.dailyBudgetMicros !== null ||
    c.monthlyBudgetMicros !== null
  );
}

/** What one isolate admitted per client key: requests and tokens, and spend (in micro-units, as "tokens" of a second ledger). */
export class ClientLimiter {
  readonly sent = new CapacityLedger();
  readonly spent = new CapacityLedger();

  /** The client's windows at `clock.now`, from the consumer's count (if any) and this isolate's own traffic. */
  windows(client: SnapshotClientKey, usage: ClientUsage | undefined, usageAt: number, clock: QuotaClock): QuotaWindow[] {
    const { now, timeZone } = clock;
    const id = client.id;
    const out: QuotaWindow[] = [];

    if (client.rpmLimit !== null || client.tpmLimit !== null) {
      const others: MinuteBucket[] = othersBuckets(usage, this.sent, id);
      const own = this.sent.sentSince(id, now - MINUTE_MS);
      const sends = () => this.sent.sendsSince(id, now - MINUTE_MS);
      const minute = (code: QuotaCode, what: "requests" | "tokens", limit: number) => {
        let pooled = 0;
        for (const b of others) pooled += b[what] * bucketWeight(b.start, now);
        out.push({
          code,
          kind: what,
          limit,
          used: pooled + own[what],
          freesAt: () => minuteFreesAt(others, sends(), what, 1, limit, now),
          resetAt: () => minuteFreesAt(others, sends(), what, limit, limit, now),
        });
      };
      if (client.rpmLimit !== null) minute("rpm_limit_exceeded", "requests", client.rpmLimit);
      if (client.tpmLimit !== null) minute("tpm_limit_exceeded", "tokens", client.tpmLimit);
    }

    const today = dayStart(now, timeZone);
    const month = monthStart(now, timeZone);
    // The count covers this day (month) only if it was made in it.
    const sameDay = usage !== undefined && usage.dayStart === today;
    const sameMonth = usage !== undefined && usage.monthStart === month;
    const ownSince = (from: number) => ({ sent: this.sent.sentSince(id, from), spent: this.spent.sentSince(id, from).tokens });

    if (client.rpdLimit !== null || client.tpdLimit !== null || client.dailyBudgetMicros !== null) {
      const own = ownSince(sameDay ? usageAt : today);
      // Requests: exactly those admitted after the latest attempt the count holds (by the second, one admitted
      // in the second the count was made would count twice).
      const after = sameDay && usage!.countedTo > 0 ? this.sent.requestsAfter(id, Math.max(usage!.countedTo, today - 1)) : null;
      const tomorrow = () => dayStart(today + 26 * 3_600_000, timeZone);
      const day = (code: QuotaCode, kind: QuotaWindow["kind"], limit: number | null, counted: number, local: number) => {
        if (limit !== null) out.push({ code, kind, limit, used: (sameDay ? counted : 0) + local, freesAt: tomorrow, resetAt: tomorrow });
      };
      day("daily_request_quota_exceeded", "requests", client.rpdLimit, usage?.day.requests ?? 0, after ?? own.sent.requests);
      day("daily_token_quota_exceeded", "tokens", client.tpdLimit, usage?.day.tokens ?? 0, own.sent.tokens);
      day("daily_budget_exceeded", "money", client.dailyBudgetMicros, usage?.day.costMicros ?? 0, own.spent);
    }

    if (client.monthlyTokenLimit !== null || client.monthlyBudgetMicros !== null) {
      const own = ownSince(sameMonth ? usageAt : month);
      const next = () => nextMonthStart(now, timeZone);
      const monthly = (code: QuotaCode, kind: QuotaWindow["kind"], limit: number | null, counted: number, local: number) => {
        if (limit !== null) out.push({ code, kind, limit, used: (sameMonth ? counted : 0) + local, freesAt: next, resetAt: next });
      };
      monthly("monthly_token_quota_exceeded", "tokens", client.monthlyTokenLimit, usage?.month.tokens ?? 0, own.sent.tokens);
      monthly("monthly_budget_exceeded", "money", client.monthlyBudgetMicros, usage?.month.costMicros ?? 0, own.spent);
    }
    return out;
  }

  /**
   * Admits one request (and counts it) unless a window has no room for it; a
   * refusal names the window that frees last (the one a client must wait for:
   * retrying when an earlier one frees would meet the next).
   */
  admit(client: SnapshotClientKey, usage: ClientUsage | undefined, usageAt: number, clock: QuotaClock): QuotaVerdict {
    const windows = this.windows(client, usage, usageAt, clock);
    let refusal: { window: QuotaWindow; at: number } | null = null;
    for (const w of windows) {
      if (w.used + 1 <= w.limit) continue;
      const at = w.freesAt();
      if (!refusal || at > refusal.at) refusal = { window: w, at };
    }
    if (refusal) {
      const { window, at } = refusal;
      return { ok: false, code: window.code, limit: window.limit, retryAfterMs: Math.max(1_000, at - clock.now), window, windows };
    }
    this.sent.record(client.id, 0, clock.now);
    return { ok: true, windows };
  }

  /** Counts what a finished request used: its tokens and its cost (micro-units; 0 when unknown). */
  settle(client: SnapshotClientKey, tokens: number, costMicros: number, now: number): void {
    if (tokens > 0) this.sent.adjust(client.id, tokens, now);
    if (costMicros > 0) this.spent.adjust(client.id, costMicros, now);
  }
}

/** A duration the way OpenAI writes its reset headers: `20ms`, `1s`, `6m0s`, `1h2m3s` (seconds rounded up). */
export function formatReset(ms: number): string {
  if (ms <= 0) return "0s";
  if (ms < 1_000) return `${Math.ceil(ms)}ms`;
  const total = Math.ceil(ms / 1_000);
  const [h, m, s] = [Math.floor(total / 3_600), Math.floor((total % 3_600) / 60), total % 60];
  return h > 0 ? `${h}h${m}m${s}s` : m > 0 ? `${m}m${s}s` : `${s}s`;
}

/**
 * The `x-ratelimit-*` headers of an answer for the client's own limits, as
 * OpenAI's API sends them: for requests and for tokens, the window with the
 * least room left (after this request, when it was admitted), its limit and
 * when it is next empty.
 */
export function quotaHeaders(windows: QuotaWindow[], admitted: boolean, now: number): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const kind of ["requests", "tokens"] as const) {
    let tightest: { w: QuotaWindow; remaining: number } | null = null;
    for (const w of windows) {
      if (w.kind !== kind) continue;
      const remaining = Math.max(0, Math.floor(w.limit - w.used - (admitted && kind === "requests" ? 1 : 0)));
      if (!tightest || remaining < tightest.remaining) tightest = { w, remaining };
    }
    if (!tightest) continue;
    headers[`x-ratelimit-limit-${kind}`] = String(tightest.w.limit);
    headers[`x-ratelimit-remaining-${kind}`] = String(tightest.remaining);
    headers[`x-ratelimit-reset-${kind}`] = formatReset(tightest.w.resetAt() - now);
  }
  return headers;
}

/** Each quota's name where a client (`GET /v1/key`) or an admin reads it. */
const QUOTA_NAMES: Record<QuotaCode, string> = {
  rpm_limit_exceeded: "rpm",
  tpm_limit_exceeded: "tpm",
  daily_request_quota_exceeded: "rpd",
  daily_token_quota_exceeded: "tpd",
  monthly_token_quota_exceeded: "monthly_tokens",
  daily_budget_exceeded: "daily_budget",
  monthly_budget_exceeded: "monthly_budget",
};

/**
 * A client key's quotas and usage as it (or an admin) reads them: the windows
 * as enforced, and the day and month as counted (a `selectClientDays` row).
 */
export function clientKeyStatus(
  client: SnapshotClientKey,
  windows: QuotaWindow[],
  counted: Record<string, number> | null,
  pool: { currency: string; timeZone: string },
): ClientKeyStatus {
  const n = (field: string) => Number(counted?.[field] ?? 0);
  return {
    object: "client_key",
    id: client.id,
    name: client.name,
    models: client.models,
    expires_at: client.expiresAt === null ? null : Math.floor(client.expiresAt / 1000),
    currency: pool.currency,
    quotas: windows.map((w) => ({
      name: QUOTA_NAMES[w.code],
      unit: w.kind === "money" ? "micros" : w.kind,
      limit: w.limit,
      used: Math.ceil(w.used),
      remaining: Math.max(0, Math.floor(w.limit - w.used)),
      resets_at: Math.ceil(w.resetAt() / 1000),
    })),
    usage: {
      today: { requests: n("day_requests"), tokens: n("day_tokens"), cost_micros: n("day_cost") },
      month: { tokens: n("month_tokens"), cost_micros: n("month_cost") },
    },
    time_zone: pool.timeZone,
  };
}
