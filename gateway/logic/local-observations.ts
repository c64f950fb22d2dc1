import { CapacityLedger } from "./capacity";

/**
 * What this isolate has seen of keys since the last snapshot: cooldowns from 429s,
 * dead or exhausted keys, keys that just failed transiently, and requests in
 * flight. It overlays the snapshot so a key that just failed is avoided at once,
 * before the consumer's health reaches KV.
 *
 * A block (429, 401, 402) is the upstream's word and holds. An avoidance (5xx,
 * network error, timeout) is only a preference: selection passes the key over
 * while another is free, and takes it when every other key is avoided too —
 * otherwise an upstream failing at random would soon have every key avoided
 * and the pool would refuse work it could do.
 *
 * A key whose block ran out is on trial (a circuit breaker's half-open state):
 * one request at a time until one has been answered, so requests that waited
 * for it do not all land on it at once and meet the same 429.
 */
export class LocalObservations {
  /** What this isolate sent with keys that have limits, and the providers' word on them from its answers. */
  readonly capacity = new CapacityLedger();
  private readonly blockedUntil = new Map<string, number>();
  private readonly avoidedUntil = new Map<string, number>();
  private readonly inflightByKey = new Map<string, number>();
  /** Keys whose block ran out and that have not been answered since. */
  private readonly onTrial = new Set<string>();
  /** Attempts sent with each key this UTC minute (all keys: what a 429 with nothing else to say is read against). */
  private minuteSends = new Map<string, number>();
  private minute = 0;

  /** Keeps `keyId` out of selection until `until` (epoch ms). */
  block(keyId: string, until: number): void {
    const prev = this.blockedUntil.get(keyId) ?? 0;
    if (until > prev) this.blockedUntil.set(keyId, until);
  }

  /** Passes `keyId` over while other keys are free, until `until` (epoch ms). */
  avoid(keyId: string, until: number): void {
    const prev = this.avoidedUntil.get(keyId) ?? 0;
    if (until > prev) this.avoidedUntil.set(keyId, until);
  }

  /** Whether any key is blocked, avoided or on trial here (a cheap check before looking one up). */
  blocksAny(): boolean {
    return this.blockedUntil.size > 0 || this.avoidedUntil.size > 0 || this.onTrial.size > 0;
  }

  /** Epoch ms until which the key is blocked here, if it is; a block that ran out puts the key on trial. */
  blockedUntilOf(keyId: string, now: number): number | undefined {
    if (this.blockedUntil.size === 0) return undefined;
    const had = this.blockedUntil.has(keyId);
    const until = liveUntil(this.blockedUntil, keyId, now);
    if (had && until === undefined) this.onTrial.add(keyId);
    return until;
  }

  /** The key answered with a success: its trial, if any, is over. */
  answered(keyId: string): void {
    if (this.onTrial.size > 0) this.onTrial.delete(keyId);
  }

  /** Whether the key is on trial with a request already out: it takes no other until that one is answered. */
  trialBusy(keyId: string): boolean {
    return this.onTrial.size > 0 && this.onTrial.has(keyId) && this.inflight(keyId) > 0;
  }

  /** Epoch ms until which the key is avoided here, if it is. */
  avoidedUntilOf(keyId: string, now: number): number | undefined {
    return liveUntil(this.avoidedUntil, keyId, now);
  }

  /** Whether any request of this isolate is in flight (lets selection skip the per-key lookup). */
  hasInflight(): boolean {
    return this.inflightByKey.size > 0;
  }

  inflight(keyId: string): number {
    if (this.inflightByKey.size === 0) return 0;
    return this.inflightByKey.get(keyId) ?? 0;
  }

  /** Attempts this isolate sent with the key in the UTC minute of `now`. */
  sentThisMinute(keyId: string, now: number): number {
    return Math.floor(now / 60_000) === this.minute ? (this.minuteSends.get(keyId) ?? 0) : 0;
  }

  /** Marks one request as started on the key at `now`; call the returned function when it ends. */
  begin(keyId: string, now: number): () => void {
    const minute = Math.floor(now / 60_000);
    if (minute !== this.minute) {
      this.minute = minute;
      this.minuteSends = new Map();
    }
    this.minuteSends.set(keyId, (this.minuteSends.get(keyId) ?? 0) + 1);
    this.inflightByKey.set(keyId, this.inflight(keyId) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      // Answered: the trial is over (a new 429 blocks the key again, and its end starts another).
      this.onTrial.delete(keyId);
      const n = this.inflight(keyId) - 1;
      if (n <= 0) this.inflightByKey.delete(keyId);
      else this.inflightByKey.set(keyId, n);
    };
  }
}

/** The entry's time if it is still in the future; expired entries are dropped on the way. */
function liveUntil(map: Map<string, number>, keyId: string, now: number): number | undefined {
  // Most of the time nothing is there: skip hashing the id (selection calls this on every sample).
  if (map.size === 0) return undefined;
  const until = map.get(keyId);
  if (until === undefined) return undefined;
  if (until <= now) {
    map.delete(keyId);
    return undefined;
  }
  return until;
}
