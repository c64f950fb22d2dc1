import { EVENT_VERSION, providerKinds, type ProbeEvent, type ProviderKindId } from "../schema";

/** A key to probe, with what is needed to reach its upstream. */
export interface ProbeTarget {
  keyId: string;
  baseUrl: string;
  kind: ProviderKindId;
  /** The key's secret, still encrypted. */
  secretEnc: string;
}

export interface ProbeDeps {
  fetch: typeof fetch;
  /** Decrypts a stored secret (injected by the host Worker, which holds the key). */
  decrypt: (sealed: string) => Promise<string>;
  now: () => number;
  newId: () => string;
}

const PROBE_TIMEOUT_MS = 10_000;

/** The probe URL: the provider's probe path after the upstream's base URL, or after its origin. */
export function probeUrl(target: ProbeTarget): string {
  const { probe } = providerKinds[target.kind];
  return (probe.from === "origin" ? new URL(target.baseUrl).origin : target.baseUrl) + probe.path;
}

/**
 * Checks one key with a GET that costs nothing — the provider's balance endpoint,
 * or its model list — and reports what it found as a probe event. Never throws:
 * a timeout, a network error or an unreadable answer is an `error` result, which
 * changes no state but is recorded.
 */
async function probeKey(target: ProbeTarget, deps: ProbeDeps): Promise<ProbeEvent> {
  const kind = providerKinds[target.kind];
  const parse = kind.probe.parse;
  const event = (result: ProbeEvent["result"], balance: number | null, detail: string | null): ProbeEvent => ({
    v: EVENT_VERSION,
    type: "probe",
    id: deps.newId(),
    ts: deps.now(),
    keyId: target.keyId,
    kind: parse ? "balance" : "recovery",
    result,
    balance,
    detail,
  });
  let res: Response;
  try {
    const secret = await deps.decrypt(target.secretEnc);
    res = await deps.fetch(probeUrl(target), {
      method: "GET",
      headers: { [kind.authHeader]: kind.authPrefix + secret, accept: "application/json" },
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
  } catch (err) {
    return event("error", null, err instanceof Error && err.name === "TimeoutError" ? "timed out" : "request failed");
  }
  if (res.status === 401 || res.status === 403) return (await res.body?.cancel(), event("auth_failed", null, `HTTP ${res.status}`));
  if (res.status === 402) return (await res.body?.cancel(), event("no_balance", 0, "HTTP 402"));
  if (!res.ok) return (await res.body?.cancel(), event("error", null, `HTTP ${res.status}`));
  if (!parse) return (await res.body?.cancel(), event("ok", null, null));
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    return event("error", null, "answer is not JSON");
  }
  const reading = parse(body);
  if (reading === "malformed") return event("error", null, "balance missing from the answer");
  return event("ok", reading.balance, null);
}

/** Runs probes with at most `concurrency` in flight, stopping to start new ones once `deadline` passes. */
export async function probeAll(targets: ProbeTarget[], deps: ProbeDeps, concurrency: number, deadline: number): Promise<ProbeEvent[]> {
  const results: ProbeEvent[] = [];
  let next = 0;
  const worker = async () => {
    while (next < targets.length && deps.now() < deadline) {
      const target = targets[next++]!;
      results.push(await probeKey(target, deps));
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  return results;
}
