import type { SnapshotClientKey } from "../../schema";

const WINDOW_SECONDS = 60;

/** Per-second counts over the last minute, in a ring. */
class MinuteWindow {
  private readonly counts = new Float64Array(WINDOW_SECONDS);
  private readonly seconds = new Float64Array(WINDOW_SECONDS).fill(-1);

  add(second: number, amount: number): void {
    const slot = second % WINDOW_SECONDS;
    if (this.seconds[slot] !== second) {
      this.seconds[slot] = second;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += amount;
  }

  /** The sum over the 60 seconds ending with `second`. */
  total(second: number): number {
    let sum = 0;
    for (let i = 0; i < WINDOW_SECONDS; i++) if (this.seconds[i]! > second - WINDOW_SECONDS) sum += this.counts[i]!;
    return sum;
  }

  /** The earliest second still in the window that holds a count, or null. */
  oldest(second: number): number | null {
    let oldest: number | null = null;
    for (let i = 0; i < WINDOW_SECONDS; i++) {
      const s = this.seconds[i]!;
      if (s > second - WINDOW_SECONDS && this.counts[i]! > 0 && (oldest === null || s < oldest)) oldest = s;
    }
    return oldest;
  }
}

export type LimitVerdict = { ok: true } | { ok: false; code: "rpm_limit_exceeded" | "tpm_limit_exceeded"; limit: number; retryAfterMs: number };

/**
 * Client keys' RPM and TPM limits, counted in this isolate over a sliding minute
 * (per-second buckets). Each isolate enforces the full limit on its own traffic:
 * exact for one isolate, and at most (isolates serving the key) × limit overall.
 */
export class ClientLimiter {
  private readonly requests = new Map<string, MinuteWindow>();
  private readonly tokens = new Map<string, MinuteWindow>();

  private window(map: Map<string, MinuteWindow>, id: string): MinuteWindow {
    let w = map.get(id);
    if (!w) {
      if (map.size >= 100_000) map.clear();
      w = new MinuteWindow();
      map.set(id, w);
    }
    return w;
  }

  /** Admits one request (and counts it) unless the client is at its RPM or TPM limit. */
  admit(client: SnapshotClientKey, now: number): LimitVerdict {
    const second = Math.floor(now / 1000);
    const verdict = (map: Map<string, MinuteWindow>, limit: number | null, code: "rpm_limit_exceeded" | "tpm_limit_exceeded"): LimitVerdict | null => {
      if (limit === null) return null;
      const w = this.window(map, client.id);
      if (w.total(second) < limit) return null;
      const oldest = w.oldest(second) ?? second;
      return { ok: false, code, limit, retryAfterMs: Math.max(1000, (oldest + WINDOW_SECONDS) * 1000 - now) };
    };
    const refused = verdict(this.requests, client.rpmLimit, "rpm_limit_exceeded") ?? verdict(this.tokens, client.tpmLimit, "tpm_limit_exceeded");
    if (refused) return refused;
    if (client.rpmLimit !== null) this.window(this.requests, client.id).add(second, 1);
    return { ok: true };
  }

  /** Counts tokens a finished request used against the client's TPM. */
  spend(client: SnapshotClientKey, tokens: number, now: number): void {
    if (client.tpmLimit !== null && tokens > 0) this.window(this.tokens, client.id).add(Math.floor(now / 1000), tokens);
  }
}
