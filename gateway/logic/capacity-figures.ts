import {
  DEFAULT_DAY,
  MINUTE_MS,
  dayWindowStart,
  minuteStart,
  nextDayReset,
  type CapacityFigures,
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
