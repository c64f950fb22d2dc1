/**
 * What this isolate has seen of keys since the last snapshot: cooldowns from 429s,
 * dead or exhausted keys, and requests in flight. It overlays the snapshot so a key
 * that just failed is avoided at once, before the consumer's health reaches KV.
 */
export class LocalObservations {
  private readonly blockedUntil = new Map<string, number>();
  private readonly inflightByKey = new Map<string, number>();

  /** Keeps `keyId` out of selection until `until` (epoch ms). */
  block(keyId: string, until: number): void {
    const prev = this.blockedUntil.get(keyId) ?? 0;
    if (until > prev) this.blockedUntil.set(keyId, until);
  }

  /** Whether any key is blocked here (a cheap check before looking one up). */
  blocksAny(): boolean {
    return this.blockedUntil.size > 0;
  }

  /** Epoch ms until which the key is blocked here, if it is. */
  blockedUntilOf(keyId: string, now: number): number | undefined {
    // Most of the time nothing is blocked: skip hashing the id (selection calls this on every sample).
    if (this.blockedUntil.size === 0) return undefined;
    const until = this.blockedUntil.get(keyId);
    if (until === undefined) return undefined;
    if (until <= now) {
      this.blockedUntil.delete(keyId);
      return undefined;
    }
    return until;
  }

  /** Whether any request of this isolate is in flight (lets selection skip the per-key lookup). */
  hasInflight(): boolean {
    return this.inflightByKey.size > 0;
  }

  inflight(keyId: string): number {
    if (this.inflightByKey.size === 0) return 0;
    return this.inflightByKey.get(keyId) ?? 0;
  }

  /** Marks one request as started on the key; call the returned function when it ends. */
  begin(keyId: string): () => void {
    this.inflightByKey.set(keyId, this.inflight(keyId) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = this.inflight(keyId) - 1;
      if (n <= 0) this.inflightByKey.delete(keyId);
      else this.inflightByKey.set(keyId, n);
    };
  }
}
