import { z } from "zod";

/**
 * Provider kinds as data. Adding a provider is adding one object here: the gateway
 * reads how to authenticate, the scheduler (later) how to probe balances.
 */
export interface ProviderKind {
  id: string;
  label: string;
  /** Base URL as an OpenAI SDK's `baseURL`; endpoint paths after `/v1` are appended. */
  defaultBaseUrl: string;
  /** Header that carries the upstream key, and the prefix before the key. */
  authHeader: string;
  authPrefix: string;
}

export const providerKinds = {
  openai: { id: "openai", label: "OpenAI", defaultBaseUrl: "https://api.openai.com/v1", authHeader: "authorization", authPrefix: "Bearer " },
  siliconflow: { id: "siliconflow", label: "SiliconFlow", defaultBaseUrl: "https://api.siliconflow.cn/v1", authHeader: "authorization", authPrefix: "Bearer " },
  deepseek: { id: "deepseek", label: "DeepSeek", defaultBaseUrl: "https://api.deepseek.com/v1", authHeader: "authorization", authPrefix: "Bearer " },
  openrouter: { id: "openrouter", label: "OpenRouter", defaultBaseUrl: "https://openrouter.ai/api/v1", authHeader: "authorization", authPrefix: "Bearer " },
  groq: { id: "groq", label: "Groq", defaultBaseUrl: "https://api.groq.com/openai/v1", authHeader: "authorization", authPrefix: "Bearer " },
  custom: { id: "custom", label: "Any OpenAI-compatible API", defaultBaseUrl: "", authHeader: "authorization", authPrefix: "Bearer " },
} as const satisfies Record<string, ProviderKind>;

export type ProviderKindId = keyof typeof providerKinds;
export const providerKindIdSchema = z.enum(Object.keys(providerKinds) as [ProviderKindId, ...ProviderKindId[]]);
