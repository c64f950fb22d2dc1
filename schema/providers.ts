import { z } from "zod";

/** What a balance probe read: a balance (null when the account has no limit), or an answer it could not read. */
export type BalanceReading = { balance: number | null } | "malformed";

/**
 * How the scheduler checks a key without spending money: a GET of `path`
 * (relative to the upstream's base URL, or to its origin), read by `parse`. A
 * kind with no balance API has `parse: null`: the GET is a liveness check.
 */
export interface ProbeSpec {
  path: string;
  from: "base" | "origin";
  parse: ((body: unknown) => BalanceReading) | null;
}

/**
 * Provider kinds as data. Adding a provider is adding one object here: the gateway
 * reads how to authenticate, the scheduler how to probe balance or liveness.
 */
export interface ProviderKind {
  id: string;
  label: string;
  /** Base URL as an OpenAI SDK's `baseURL`; endpoint paths after `/v1` are appended. */
  defaultBaseUrl: string;
  /** Header that carries the upstream key, and the prefix before the key. */
  authHeader: string;
  authPrefix: string;
  probe: ProbeSpec;
  /**
   * Which limit the `x-ratelimit-*-requests` and `-tokens` headers describe: OpenAI's
   * are per minute; Groq's requests headers count the day (RPD), its tokens the minute.
   */
  rateLimitHeaders: { requests: "minute" | "day"; tokens: "minute" | "day" };
}

const num = (v: unknown): number | null => {
  const n = typeof v === "string" ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
};
const obj = (v: unknown): Record<string, unknown> | null => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null);

/** SiliconFlow `GET /v1/user/info`: `data.totalBalance` (a string). */
function parseSiliconFlow(body: unknown): BalanceReading {
  const balance = num(obj(obj(body)?.data)?.totalBalance);
  return balance === null ? "malformed" : { balance };
}

/** DeepSeek `GET /user/balance`: the sum of `balance_infos[].total_balance`; zero when `is_available` is false. */
function parseDeepSeek(body: unknown): BalanceReading {
  const b = obj(body);
  if (!b || !Array.isArray(b.balance_infos)) return "malformed";
  if (b.is_available === false) return { balance: 0 };
  let total = 0;
  for (const info of b.balance_infos) {
    const value = num(obj(info)?.total_balance);
    if (value === null) return "malformed";
    total += value;
  }
  return { balance: total };
}

/** OpenRouter `GET /api/v1/key`: `limit - usage` (`limit_remaining`), or no balance for an unlimited key. */
function parseOpenRouter(body: unknown): BalanceReading {
  const data = obj(obj(body)?.data);
  if (!data) return "malformed";
  if (data.limit === null || data.limit === undefined) return { balance: null };
  const remaining = num(data.limit_remaining);
  if (remaining !== null) return { balance: remaining };
  const limit = num(data.limit);
  const usage = num(data.usage);
  return limit === null || usage === null ? "malformed" : { balance: limit - usage };
}

const bearer = { authHeader: "authorization", authPrefix: "Bearer " } as const;
/** The common reading of the rate-limit headers (OpenAI's, and most that copy it): both windows are a minute. */
const perMinute = { rateLimitHeaders: { requests: "minute", tokens: "minute" } } as const;
const liveness: ProbeSpec = { path: "/models", from: "base", parse: null };

export const providerKinds = {
  openai: { id: "openai", label: "OpenAI", defaultBaseUrl: "https://api.openai.com/v1", ...bearer, ...perMinute, probe: liveness },
  siliconflow: {
    id: "siliconflow",
    label: "SiliconFlow",
    defaultBaseUrl: "https://api.siliconflow.cn/v1",
    ...bearer,
    ...perMinute,
    probe: { path: "/user/info", from: "base", parse: parseSiliconFlow },
  },
  deepseek: {
    id: "deepseek",
    label: "DeepSeek",
    defaultBaseUrl: "https://api.deepseek.com/v1",
    ...bearer,
    ...perMinute,
    probe: { path: "/user/balance", from: "origin", parse: parseDeepSeek },
  },
  openrouter: {
    id: "openrouter",
    label: "OpenRouter",
    defaultBaseUrl: "https://openrouter.ai/api/v1",
    ...bearer,
    ...perMinute,
    probe: { path: "/key", from: "base", parse: parseOpenRouter },
  },
  groq: {
    id: "groq",
    label: "Groq",
    defaultBaseUrl: "https://api.groq.com/openai/v1",
    ...bearer,
    rateLimitHeaders: { requests: "day", tokens: "minute" },
    probe: liveness,
  },
  custom: { id: "custom", label: "Any OpenAI-compatible API", defaultBaseUrl: "", ...bearer, ...perMinute, probe: liveness },
} as const satisfies Record<string, ProviderKind>;

export type ProviderKindId = keyof typeof providerKinds;
export const providerKindIdSchema = z.enum(Object.keys(providerKinds) as [ProviderKindId, ...ProviderKindId[]]);
