/** Token counts of one attempt. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
}

function count(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.round(value) : 0;
}

function detail(parent: unknown, name: string): number {
  return typeof parent === "object" && parent !== null ? count((parent as Record<string, unknown>)[name]) : 0;
}

/**
 * Reads an OpenAI `usage` object — chat and completions (`prompt_tokens`…), the
 * Responses API (`input_tokens`…), embeddings — including cached and reasoning
 * token details; null when the body reports none.
 */
export function readUsage(body: unknown): Usage | null {
  if (typeof body !== "object" || body === null) return null;
  const b = body as { usage?: unknown; response?: { usage?: unknown } };
  // Responses API stream events carry usage on `response`.
  const usage = b.usage ?? b.response?.usage;
  if (typeof usage !== "object" || usage === null) return null;
  const u = usage as Record<string, unknown>;
  const promptTokens = count(u.prompt_tokens ?? u.input_tokens);
  const completionTokens = count(u.completion_tokens ?? u.output_tokens);
  return {
    promptTokens,
    completionTokens,
    totalTokens: count(u.total_tokens) || promptTokens + completionTokens,
    cachedTokens: detail(u.prompt_tokens_details ?? u.input_tokens_details, "cached_tokens"),
    reasoningTokens: detail(u.completion_tokens_details ?? u.output_tokens_details, "reasoning_tokens"),
  };
}
