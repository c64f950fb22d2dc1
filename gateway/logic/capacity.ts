import { DEFAULT_DAY, MINUTE_MS, dayWindowStart, nextDayReset, type KeyUsage, type Limits, type RateLimitReading, type UsageReading } from "../../schema";

/**
 * Whether a key has room for one more request, from everything the isolate
 * knows: its limits (configured), the pool's usage as the consumer last counted
 * it, the provider's latest word on what remains, and what this isolate sent
 * itself since. Pure: data in, an answer out.
 */

/** How long the isolate remembers what it sent with a key: well past a minute window and a usage refresh. */
export const LEDGER_MS = 5 * MINUTE_MS;

/** How many of a key's latest sends the isolate keeps to the millisecond: enough to count exactly after the pool's count was made. */
export const RECENT_SENDS = 512;

/** What a key's windows say of one more request: when it may be sent (`now` or earlier: at once), and the share of its tightest window still free. */
export interface Headroom {
  freesAt: number;
  fraction: number;
}

/** Running totals of what this isolate sent with a key: requests, and tokens charged. */
export interface SendCount {
  requests: number;
  tokens: number;
}

/** A provider's word read here, with the key's send totals as they stood when the request that brought it was sent. */
export interface LocalReading extends UsageReading {
  sent: SendCount;
  /** For a limit read from a 429 that said nothing else: the window it is taken to repeat every (ms). */
  windowMs?: number;
}

interface KeyLedger {
  /** [second, requests, tokens] triples, oldest first. */
  sends: number[];
  /** Everything sent with the key since the isolate began: reading totals apart gives what was sent after a reading, exactly. */
  total: SendCount;
  /** When each of the key's latest requests went out (ms), oldest first, for at most the ledger's horizon and `RECENT_SENDS` of them. */
  recent: number[];
  /** Every request sent at or after this moment is in `recent` (the latest one forgotten was before it). */
  recentFrom: number;
  requests: LocalReading | null;
  tokens: LocalReading | null;
}

/** A reading wins over another when it is newer; on a tie, when less remains (as the consumer folds them). */
function newer(a: UsageReading, b: UsageReading | null): boolean {
  return !b || a.at > b.at || (a.at === b.at && (a.remaining ?? -1) < (b.remaining ?? -1));
}

/**
 * What this isolate sent with each key it used lately, by second, and the
 * provider's latest word on each key's windows from the answers it saw.
 */
export class CapacityLedger {
  private readonly keys = new Map<string, KeyLedger>();
  /** Whether any answer seen here carried a provider's word (most pools: all or none). */
  private anyWord = false;

  /** Whether any key has a provider's word here: when none has, selection need not look keys up. */
  learnedAny(): boolean {
    return this.anyWord;
  }

  private entry(keyId: string): KeyLedger {
    let e = this.keys.get(keyId);
    if (!e) this.keys.set(keyId, (e = { sends: [], total: { requests: 0, tokens: 0 }, recent: [], recentFrom: -Infinity, requests: null, tokens: null }));
    return e;
  }

  /** Records one request sent with the key at `at`, counting `tokens` for it; returns the key's send totals with it. */
  record(keyId: string, tokens: number, at: number): SendCount {
    this.add(keyId, 1, tokens, at);
    const e = this.entry(keyId);
    const recent = e.recent;
    let i = recent.length;
    while (i > 0 && recent[i - 1]! > at) i--;
    recent.splice(i, 0, at);
    let drop = 0;
    while (drop < recent.length && (recent.length - drop > RECENT_SENDS || recent[drop]! < at - LEDGER_MS)) drop++;
    if (drop > 0) e.recentFrom = recent.splice(0, drop)[drop - 1]! + 1;
    return { requests: e.total.requests, tokens: e.total.tokens };
  }

  /** Adds `tokens` (more, or fewer when negative) to what the key was charged at `at`: the answer's usage, once known. */
  adjust(keyId: string, tokens: number, at: number): void {
    if (tokens !== 0) this.add(keyId, 0, tokens, at);
  }

  private add(keyId: string, requests: number, tokens: number, at: number): void {
    const e = this.entry(keyId);
    e.total.requests += requests;
    e.total.tokens += tokens;
    const sends = e.sends;
    const second = Math.floor(at / 1000);
    // Sends come in time order, nearly always into the last second kept: look from the end.
    let i = sends.length - 3;
    while (i >= 0 && sends[i]! > second) i -= 3;
    if (i >= 0 && sends[i] === second) {
      sends[i + 1]! += requests;
      sends[i + 2]! += tokens;
    } else sends.splice(i + 3, 0, second, requests, tokens);
    // Forget what is past the ledger's horizon, a few entries at a time.
    const horizon = Math.floor((at - LEDGER_MS) / 1000);
    let drop = 0;
    while (drop < sends.length && sends[drop]! < horizon) drop += 3;
    if (drop > 0) sends.splice(0, drop);
  }

  /** What this isolate sent with the key from `from` on (as far back as it remembers). */
  sentSince(keyId: string, from: number): { requests: number; tokens: number } {
    const sends = this.keys.get(keyId)?.sends;
    let requests = 0;
    let tokens = 0;
    if (!sends) return { requests, tokens };
    const second = Math.floor(from / 1000);
    for (let i = sends.length - 3; i >= 0 && sends[i]! >= second; i -= 3) {
      requests += sends[i + 1]!;
      tokens += sends[i + 2]!;
    }
    return { requests, tokens };
  }

  /**
   * How many requests this isolate sent with the key after `t` (ms), exactly;
   * null when it no longer remembers its sends that far back to the millisecond.
   */
  requestsAfter(keyId: string, t: number): number | null {
    const e = this.keys.get(keyId);
    if (!e) return 0;
    if (e.recentFrom > t + 1) return null;
    const recent = e.recent;
    let i = recent.length;
    while (i > 0 && recent[i - 1]! > t) i--;
    return recent.length - i;
  }

  /** What this isolate sent with the key in the minute starting at `start` (as far back as it remembers). */
  sentInMinute(keyId: string, start: number): SendCount {
    const sends = this.keys.get(keyId)?.sends;
    let requests = 0;
    let tokens = 0;
    if (!sends) return { requests, tokens };
    const [from, to] = [Math.floor(start / 1000), Math.floor(start / 1000) + 60];
    for (let i = sends.length - 3; i >= 0 && sends[i]! >= from; i -= 3) {
      if (sends[i]! >= to) continue;
      requests += sends[i + 1]!;
      tokens += sends[i + 2]!;
    }
    return { requests, tokens };
  }

  /** What this isolate sent with the key from `from` on, second by second, oldest first: [second, requests, tokens] triples. */
  sendsSince(keyId: string, from: number): number[] {
    const sends = this.keys.get(keyId)?.sends;
    if (!sends) return [];
    const second = Math.floor(from / 1000);
    let i = sends.length;
    while (i >= 3 && sends[i - 3]! >= second) i -= 3;
    return sends.slice(i);
  }

  /**
   * Takes an answer's rate-limit headers as the provider's latest word on the
   * key, read at `at`; `sent` is what `record` returned when that request was
   * sent, so what went out after it is known exactly (by the second, it would
   * count the request itself and its neighbours again).
   */
  learn(keyId: string, reading: RateLimitReading, at: number, sent?: SendCount, windowMs?: number): void {
    const e = this.entry(keyId);
    for (const w of ["requests", "tokens"] as const) {
      const r = reading[w];
      if (!r) continue;
      const next: LocalReading = {
        at,
        limit: r.limit,
        remaining: r.remaining,
        resetAt: r.resetMs === null ? null : at + r.resetMs,
        sent: sent ?? { ...e.total },
      };
      if (windowMs !== undefined) next.windowMs = windowMs;
      if (newer(next, e[w])) e[w] = next;
      this.anyWord = true;
    }
  }

  /** What this isolate sent with the key after a reading: exactly for one read here, by the second for the pool's. */
  sentAfter(keyId: string, reading: UsageReading | LocalReading): SendCount {
    if (!("sent" in reading)) return this.sentSince(keyId, reading.at);
    const total = this.keys.get(keyId)?.total;
    return { requests: (total?.requests ?? 0) - reading.sent.requests, tokens: (total?.tokens ?? 0) - reading.sent.tokens };
  }

  /** The provider's latest word this isolate saw on the key's requests and tokens windows. */
  learned(keyId: string): { requests: LocalReading | null; tokens: LocalReading | null } {
    const e = this.keys.get(keyId);
    return { requests: e?.requests ?? null, tokens: e?.tokens ?? null };
  }

  /** Whether this isolate knows anything of the key (a cheap test before the work). */
  knows(keyId: string): boolean {
    return this.keys.size > 0 && this.keys.has(keyId);
  }
}

/** What a request needs of a key: one request, and this many tokens (an estimate). */
export interface Need {
  tokens: number;
}

/**
 * The key's headroom for one more request at `now`.
 *
 * - Configured per-minute limits count other isolates' traffic from the pool's
 *   last two minute buckets the way sliding-window limiters do (this minute,
 *   plus the previous one weighted by how much of it is still inside the
 *   window) — the buckets less what this isolate sent in those minutes — and
 *   this isolate's own sends of the last 60 seconds exactly; a full window
 *   frees when that estimate first leaves room (see `minuteFreesAt`).
 * - Configured per-day limits count the pool's day so far plus this isolate's
 *   requests sent after the latest attempt that count holds (to the
 *   millisecond); a full day frees when the provider's day resets.
 * - The provider's own word (remaining until a reset), minus what this isolate
 *   sent since it was read, frees at its reset.
 */
export function headroom(
  limits: Limits,
  usage: KeyUsage | undefined,
  usageAt: number,
  learned: { requests: UsageReading | null; tokens: UsageReading | null },
  ledger: CapacityLedger,
  keyId: string,
  need: Need,
  now: number,
): Headroom {
  let freesAt = -Infinity;
  let fraction = 1;
  /** One window: `used` so far against `limit`, needing `more`; full until `until` (a time, or how to work it out). */
  const check = (used: number, more: number, limit: number | undefined | null, until: number | null | (() => number)) => {
    if (limit === undefined || limit === null || limit <= 0 || until === null) return;
    if (used + more > limit) freesAt = Math.max(freesAt, typeof until === "number" ? until : until());
    fraction = Math.min(fraction, Math.max(0, (limit - used) / limit));
  };

  if (limits.rpm !== undefined || limits.tpm !== undefined) {
    // Other isolates' traffic from the pool's minute buckets, weighted the sliding-window way; this
    // isolate's own, exactly, from its ledger (the last 60 seconds of it).
    const others = othersBuckets(usage, ledger, keyId);
    const pool = { requests: 0, tokens: 0 };
    for (const b of others) {
      const w = bucketWeight(b.start, now);
      pool.requests += b.requests * w;
      pool.tokens += b.tokens * w;
    }
    const local = ledger.sentSince(keyId, now - MINUTE_MS);
    // When a window is full, the moment it frees is worked out only then: most checks find room.
    const frees = (what: "requests" | "tokens", more: number, limit: number) => () =>
      minuteFreesAt(others, ledger.sendsSince(keyId, now - MINUTE_MS), what, more, limit, now);
    check(pool.requests + local.requests, 1, limits.rpm, limits.rpm === undefined ? null : frees("requests", 1, limits.rpm));
    check(pool.tokens + local.tokens, need.tokens, limits.tpm, limits.tpm === undefined ? null : frees("tokens", need.tokens, limits.tpm));
  }

  if (limits.rpd !== undefined || limits.tpd !== undefined) {
    const rule = limits.day ?? DEFAULT_DAY;
    const start = dayWindowStart(rule, now);
    // The pool's count covers this day only if it was made in it; a rolling day is approximated by the count as made.
    const sameDay = usage !== undefined && (rule.reset === "rolling" || usage.dayStart === start);
    const from = sameDay ? usageAt : start;
    const bySecond = ledger.sentSince(keyId, from);
    // Requests: when the count says which attempt it holds last, exactly those sent after it (by the second,
    // one sent in the second the count was made would count twice, and a key one short of its day look
    // spent until midnight). Tokens by the second: an answer's usage is charged when it arrives.
    const after = sameDay && usage!.countedTo > 0 ? ledger.requestsAfter(keyId, Math.max(usage!.countedTo, start - 1)) : null;
    const local = { requests: after ?? bySecond.requests, tokens: bySecond.tokens };
    const used = { requests: (sameDay ? usage!.day.requests : 0) + local.requests, tokens: (sameDay ? usage!.day.tokens : 0) + local.tokens };
    const reset = nextDayReset(rule, now);
    check(used.requests, 1, limits.rpd, reset);
    check(used.tokens, need.tokens, limits.tpd, reset);
  }

  // Any request takes at least one token of a tokens window, estimated or not.
  for (const [word, more] of [
    [learned.requests, 1],
    [learned.tokens, Math.max(1, need.tokens)],
  ] as const) {
    // One without a reset is taken for a minute.
    if (!word || word.remaining === null) continue;
    const resetAt = word.resetAt ?? word.at + MINUTE_MS;
    if (resetAt <= now) {
      // The window has begun again: its whole limit, less what this isolate sent since (by the second, so a
      // little more), until it too is spent. A provider's word is good for one window (its next answer says
      // more); a limit read from a 429 rolls on, a minute at a time, as far back as the ledger remembers.
      if (!word.limit) continue;
      const rollsEvery = (word as Partial<LocalReading>).windowMs;
      const rolling = rollsEvery !== undefined;
      const windowMs = rollsEvery ?? MINUTE_MS;
      if (now >= resetAt + (rolling ? LEDGER_MS - windowMs : windowMs)) continue;
      const start = resetAt + Math.floor((now - resetAt) / windowMs) * windowMs;
      const since = ledger.sentSince(keyId, start);
      const remaining = word.limit - (word === learned.requests ? since.requests : since.tokens);
      if (remaining < more) freesAt = Math.max(freesAt, start + windowMs);
      fraction = Math.min(fraction, Math.max(0, remaining / word.limit));
      continue;
    }
    const sent = ledger.sentAfter(keyId, word);
    const used = word === learned.requests ? sent.requests : sent.tokens;
    const remaining = word.remaining - used;
    if (remaining < more) freesAt = Math.max(freesAt, resetAt);
    if (word.limit) fraction = Math.min(fraction, Math.max(0, remaining / word.limit));
  }

  return { freesAt, fraction };
}

/**
 * When a per-minute estimate first leaves room for `more` under `limit`. The
 * estimate at a moment t is what `headroom` counts: each minute bucket of other
 * isolates' traffic, whole while t is in it and fading linearly over the minute
 * after (the sliding-window weight), plus this isolate's own sends of the last
 * 60 seconds, each dropping out 60 seconds after its second. It only falls as t
 * grows, piecewise linearly between those moments; the answer is exact to the
 * millisecond (rounded up), so a client told to come back then finds room.
 */
export function minuteFreesAt(buckets: MinuteBucket[], sends: number[], what: "requests" | "tokens", more: number, limit: number, now: number): number {
  /** The pool's part at t: each bucket whole within its minute, fading over the next. */
  const pooled = (t: number) => {
    let n = 0;
    for (const b of buckets) n += b[what] * bucketWeight(b.start, t);
    return n;
  };
  const column = what === "requests" ? 1 : 2;
  // The moments the estimate's slope or level changes, after now: the buckets' fades, and each send dropping out.
  const moments = new Set<number>();
  for (const { start } of buckets) for (const m of [start + MINUTE_MS, start + 2 * MINUTE_MS]) if (m > now) moments.add(m);
  for (let i = 0; i < sends.length; i += 3) moments.add((sends[i]! + 1) * 1000 + MINUTE_MS);
  const ordered = [...moments].filter((m) => m > now).sort((a, b) => a - b);
  /** This isolate's part at t: the sends whose second ends within the 60 seconds before t. */
  const local = (t: number) => {
    let n = 0;
    for (let i = 0; i < sends.length; i += 3) if ((sends[i]! + 1) * 1000 + MINUTE_MS > t) n += sends[i + column]!;
    return n;
  };
  const room = limit - more;
  let from = now;
  for (const to of ordered) {
    // Between `from` and `to` this isolate's part is fixed and the pool's falls linearly.
    const fixed = local(from);
    const [a, b] = [pooled(from), pooled(to)];
    if (a + fixed <= room) return from;
    if (b + fixed <= room) return Math.ceil(from + ((a + fixed - room) / (a - b)) * (to - from));
    from = to;
  }
  // Past every moment nothing is counted. (A request larger than the limit never fits: it is let through then, for the provider to refuse.)
  return from;
}

/** A minute of other isolates' traffic with a key. */
export interface MinuteBucket {
  start: number;
  requests: number;
  tokens: number;
}

/** How much of a minute bucket a sliding 60-second window ending at t holds: all of it while t is in it, fading over the minute after. */
export function bucketWeight(start: number, t: number): number {
  if (t < start) return 0;
  return Math.min(1, Math.max(0, 1 - (t - start - MINUTE_MS) / MINUTE_MS));
}

/** The pool's last two minute buckets of the key (or client), less what this isolate sent in those minutes (its own are counted apart, exactly). */
export function othersBuckets(
  usage: Pick<KeyUsage, "minuteStart" | "minute" | "previousMinute"> | undefined,
  ledger: CapacityLedger,
  keyId: string,
): MinuteBucket[] {
  if (!usage) return [];
  const bucket = (start: number, counted: { requests: number; tokens: number }): MinuteBucket => {
    const own = ledger.sentInMinute(keyId, start);
    return { start, requests: Math.max(0, counted.requests - own.requests), tokens: Math.max(0, counted.tokens - own.tokens) };
  };
  return [bucket(usage.minuteStart, usage.minute), bucket(usage.minuteStart - MINUTE_MS, usage.previousMinute)];
}
