import { describe, expect, it } from "vitest";
import type { SnapshotClientKey } from "../../schema";
import { ClientLimiter } from "../../gateway/logic/client-limits";

const client = (rpmLimit: number | null, tpmLimit: number | null): SnapshotClientKey => ({
  id: `c-${rpmLimit}-${tpmLimit}`,
  name: "c",
  hash: "0".repeat(64),
  models: [],
  rpmLimit,
  tpmLimit,
  expiresAt: null,
  enabled: true,
  smoothStreams: null,
});

describe("ClientLimiter", () => {
  it("admits up to the RPM limit in a sliding minute, then says when to retry", () => {
    const limiter = new ClientLimiter();
    const c = client(3, null);
    const t0 = 1_000_000;
    expect(limiter.admit(c, t0).ok).toBe(true);
    expect(limiter.admit(c, t0 + 10_000).ok).toBe(true);
    expect(limiter.admit(c, t0 + 20_000).ok).toBe(true);
    const refused = limiter.admit(c, t0 + 30_000);
    expect(refused).toEqual({ ok: false, code: "rpm_limit_exceeded", limit: 3, retryAfterMs: 30_000 });
    // The first request leaves the window 60 s after it was made.
    expect(limiter.admit(c, t0 + 60_000).ok).toBe(true);
  });

  it("refuses once the tokens spent in the last minute reach the TPM limit", () => {
    const limiter = new ClientLimiter();
    const c = client(null, 100);
    const t0 = 5_000_000;
    expect(limiter.admit(c, t0).ok).toBe(true);
    limiter.spend(c, 100, t0 + 500);
    expect(limiter.admit(c, t0 + 1_000)).toMatchObject({ ok: false, code: "tpm_limit_exceeded" });
    expect(limiter.admit(c, t0 + 61_000).ok).toBe(true);
  });

  it("does not count anything for a client without limits", () => {
    const limiter = new ClientLimiter();
    const c = client(null, null);
    for (let i = 0; i < 1_000; i++) expect(limiter.admit(c, 1_000 + i).ok).toBe(true);
  });
});
