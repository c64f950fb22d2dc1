import {
  DEFAULT_DAY,
  MINUTE_MS,
  dayWindowStart,
  minuteStart,
  nextDayReset,
  type CapacityFigures,
  type Headroom,
  type KeyView,
  type KeyUsage,
  type Limits,
  type ProviderKind,
  type WindowFigure,
} from "../../schema";
import type { WindowReading } from "../../storage/key-capacity";

/**
 * What the dashboard and the admin API show of a key's capacity: for each of
 * RPM, RPD, TPM and TPD, the limit in force — configured, else what the
 * provider's headers said (which window a header describes is the provider
 * kind's data) — and how much of it is used: the pool's count for a configured
 * limit, the provider's own count (limit − remaining) for a learned one.
 */
export function capacityFigures(
  limits: Limits,
  usage: KeyUsage | undefined,
  readings: { requests: WindowReading | null; tokens: WindowReading | null },
  windows: ProviderKind["rateLimitHeaders"],
  now: number,
): CapacityFigures {
  const thisMinute = minuteStart(now);
  const weight = 1 - (now - thisMinute) / MINUTE_MS;
  const minute = (what: "requests" | "tokens") =>
    !usage
      ? 0
      : usage.minuteStart === thisMinute
        ? usage.minute[what] + usage.previousMinute[what] * weight
        : usage.minuteStart === thisMinute - MINUTE_MS
          ? usage.minute[what] * weight
          : 0;
  const rule = limits.day ?? DEFAULT_DAY;
  const sameDay = usage !== undefined && (rule.reset === "rolling" || usage.dayStart === dayWindowStart(rule, now));
  const day = (what: "requests" | "tokens") => (sameDay ? usage!.day[what] : 0);

  const configured = (limit: number | undefined, used: number, resetAt: number): WindowFigure | null =>
    limit === undefined ? null : { used: Math.round(used), limit, source: "configured", resetAt };
  const learned = (r: WindowReading | null): WindowFigure | null =>
    !r || r.limit === null || r.remaining === null || (r.resetAt !== null && r.resetAt <= now)
      ? null
      : { used: Math.max(0, r.limit - r.remaining), limit: r.limit, source: "learned", resetAt: r.resetAt };
  const learnedAs = (window: "minute" | "day", what: "requests" | "tokens") => (windows[what] === window ? learned(readings[what]) : null);

  const figures = {
    rpm: configured(limits.rpm, minute("requests"), thisMinute + MINUTE_MS) ?? learnedAs("minute", "requests"),
    rpd: configured(limits.rpd, day("requests"), nextDayReset(rule, now)) ?? learnedAs("day", "requests"),
    tpm: configured(limits.tpm, minute("tokens"), thisMinute + MINUTE_MS) ?? learnedAs("minute", "tokens"),
    tpd: configured(limits.tpd, day("tokens"), nextDayReset(rule, now)) ?? learnedAs("day", "tokens"),
  };
  const shares = Object.values(figures)
    .filter((f): f is WindowFigure => f !== null)
    .map((f) => Math.min(1, f.used / f.limit));
  return { ...figures, nearLimit: shares.length > 0 ? Math.max(...shares) : null };
}

const WINDOWS = ["rpm", "rpd", "tpm", "tpd"] as const;

/** Nothing summed yet. */
export function emptyHeadroom(): Headroom {
  const empty = () => ({ limit: 0, used: 0, free: 0, keys: 0, unknownKeys: 0 });
  return { rpm: empty(), rpd: empty(), tpm: empty(), tpd: empty() };
}

/**
 * Adds a key to a group's headroom. A disabled or dead key adds nothing; a key
 * that is cooling, failing or exhausted adds its limits and use but no free
 * room (nothing will be sent to it now).
 */
export function addToHeadroom(sum: Headroom, key: Pick<KeyView, "state" | "capacity">): void {
  if (key.state === "disabled" || key.state === "dead") return;
  const serving = key.state === "active";
  for (const w of WINDOWS) {
    const f = key.capacity[w];
    const into = sum[w];
    if (!f) {
      if (serving) into.unknownKeys++;
      continue;
    }
    const used = Math.min(f.used, f.limit);
    into.keys++;
    into.limit += f.limit;
    into.used += used;
    if (serving) into.free += f.limit - used;
  }
}
