import { KEPT_FAILURES, failureEntry, type KeypoolEvent, type Settings } from "../../schema";
import type { HealthRow } from "../../storage/key-health";

function emptyRow(key: string): HealthRow {
  return { key, ok: 0, rl: 0, cool: 0, auth: 0, nobal: 0, failures: [], errTs: 0, err: "", used: 0, balance: null, balTs: 0, probeTs: 0, probe: "" };
}

/** Last-writer-wins with a deterministic tie-break, so the order of events never matters. */
function later(ts: number, value: string, curTs: number, cur: string): boolean {
  return ts > curTs || (ts === curTs && value > cur);
}

/**
 * Folds a batch's attempt and probe events into per-key health contributions.
 * Every field is a maximum, a bounded newest-first set or a last-writer-wins
 * value, so contributions merge the same way in any order and a duplicate
 * changes nothing.
 */
export function toHealthRows(events: KeypoolEvent[], settings: Settings): HealthRow[] {
  const rows = new Map<string, HealthRow>();
  const row = (key: string) => {
    let r = rows.get(key);
    if (!r) rows.set(key, (r = emptyRow(key)));
    return r;
  };
  const error = (r: HealthRow, ts: number, text: string) => {
    if (later(ts, text, r.errTs, r.err)) {
      r.errTs = ts;
      r.err = text;
    }
  };
  for (const e of events) {
    if (e.type === "attempt") {
      const r = row(e.keyId);
      r.used = Math.max(r.used, e.ts);
      switch (e.outcome) {
        case "ok":
          r.ok = Math.max(r.ok, e.ts);
          break;
        case "rate_limited":
          r.rl = Math.max(r.rl, e.ts);
          r.cool = Math.max(r.cool, e.ts + (e.retryAfterMs ?? settings.defaultCooldownMs));
          error(r, e.ts, `${e.status} rate limited`);
          break;
        case "auth_failed":
          r.auth = Math.max(r.auth, e.ts);
          error(r, e.ts, `${e.status} key rejected`);
          break;
        case "no_balance":
          r.nobal = Math.max(r.nobal, e.ts);
          error(r, e.ts, `${e.status} no balance`);
          break;
        case "upstream_error":
        case "network_error":
          r.failures.push(failureEntry(e.ts, e.id));
          error(r, e.ts, e.outcome === "network_error" ? "network error" : `${e.status} upstream error`);
          break;
        default:
          // client_error and aborted say nothing about the key
          break;
      }
    } else if (e.type === "probe") {
      const r = row(e.keyId);
      if (later(e.ts, e.result, r.probeTs, r.probe)) {
        r.probeTs = e.ts;
        r.probe = e.result;
      }
      if (e.balance !== null && (e.ts > r.balTs || (e.ts === r.balTs && e.balance > (r.balance ?? -Infinity)))) {
        r.balTs = e.ts;
        r.balance = e.balance;
      }
      const empty = e.balance !== null && e.balance <= 0;
      if (e.result === "ok" && !empty) r.ok = Math.max(r.ok, e.ts);
      if (e.result === "no_balance" || (e.result === "ok" && empty)) {
        r.nobal = Math.max(r.nobal, e.ts);
        error(r, e.ts, "probe: no balance");
      }
      if (e.result === "auth_failed") {
        r.auth = Math.max(r.auth, e.ts);
        error(r, e.ts, "probe: key rejected");
      }
    }
  }
  for (const r of rows.values()) r.failures = [...new Set(r.failures)].sort().reverse().slice(0, KEPT_FAILURES);
  return [...rows.values()];
}
